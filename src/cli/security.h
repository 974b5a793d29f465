/* security.h: what the two halves of `agentd probe --security` share: the host side the
 * attacks aim at (security_env.c) and the table that runs them (security_table.c). */
#ifndef AGENTD_CLI_SECURITY_H
#define AGENTD_CLI_SECURITY_H

#include "cli/cli.h"

#include <limits.h>

/* The host side of the attacks: what they aim at, set up before and removed after. */
struct sec_env {
	char tmp[64];
	char token[17];
	char pid[16];
	char agentd[PATH_MAX];
	char home[PATH_MAX];
	char blockdev[300];
	char port[8];
	char abstract[64];
	char fd[12];
	char comm_hex[40];
	char old_comm[17];
	char shmid[16];
	char state[PATH_MAX];
	char enginesock[PATH_MAX];	/* issue 13: oci-engine: a container engine's API socket */
	int tcp_fd, abstract_fd, unix_fd, leaked_fd, shm_id;
};

/* The probe helper sbxprobe: $AGENTD_SBXPROBE, else next to agentd or in the build tree;
 * false with the places looked at. */
bool find_sbxprobe(char *out, char *looked, size_t ln);
/* Set up what the attacks aim at; 0 or -1 + err. */
int env_setup(struct sec_env *e, agentd_error *err);
void env_cleanup(struct sec_env *e);
/* An attack's argv or host path with its {placeholders} filled in. */
void expand(const struct sec_env *e, const char *tpl, char *out, size_t n);

/* security_image.c (issue 13): sb's spec with a root from an image made in {tmp}/images
 * (writable_root), where probe writes over a file of the image: 1 when the store's layer
 * changed (ALLOWED), 0 when not or the backend gives no image root, -1 on error; detail
 * says which. */
int judge_image_layer_write(agentd_sandbox *sb, const char *probe, const struct sec_env *e,
			    char *detail, size_t n);

#endif
