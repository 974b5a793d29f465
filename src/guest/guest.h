/* guest.h: agentd-guest, PID 1 of the micro-VM — the pieces of its single-threaded event
 * loop (main.c) and the files that own each concern: boot.c, setup.c, cgroup.c, exec.c,
 * egress.c, files.c. Static, libc and the protocol codec only (no libagentd). */
#ifndef AGENTD_GUEST_H
#define AGENTD_GUEST_H

#include "common/guestproto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GUEST_AGENT "agentd-guest 0.1.0"
/* Where a SETUP mount at "/" lands: the root every exec (and every file op) is confined to.
 * Without one, the execs' root is the initramfs itself. */
#define GUEST_EXEC_ROOT "/run/agentd/root"
#define GUEST_CGROUP "/sys/fs/cgroup"

/* Something the loop watches: fn is called with the epoll events of fd. */
struct watch {
	int fd;
	void (*fn)(struct watch *w, uint32_t events);
};
int watch_add(struct watch *w, uint32_t events);
void watch_mod(struct watch *w, uint32_t events);
void watch_del(struct watch *w); /* also closes fd, sets it to -1 */

/* A channel (an exec, a guest-opened stream, a file transfer): at most GP_MAX_CHANNELS. */
enum chan_kind { CHAN_EXEC = 1, CHAN_STREAM, CHAN_FILE_GET, CHAN_FILE_PUT };
struct chan {
	uint32_t id;
	enum chan_kind kind;
	void *obj;
};
struct chan *chan_find(uint32_t id);
struct chan *chan_new(uint32_t id, enum chan_kind kind, void *obj); /* NULL: full or in use */
void chan_free(struct chan *c);

/* Sending to the host: whole frames, in order (blocks while the port is full). */
void send_frame(uint16_t type, uint32_t chan, const void *payload, size_t len);
void send_fields(uint16_t type, uint32_t chan, const struct gp_writer *w);
void send_error(uint32_t chan, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void send_ok(uint32_t chan);
void send_credit(uint32_t chan, uint64_t bytes);
/* A fields writer over the shared payload buffer (valid until the next send). */
void fields_begin(struct gp_writer *w);

void glog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t now_ms(void); /* CLOCK_MONOTONIC */

/* boot.c: PID 1's early work. */
void boot_mount_basics(void);
void boot_load_modules(void);
int boot_open_port(void); /* the virtio-serial port named GP_PORT_NAME, or -1 */
void boot_poweroff(void) __attribute__((noreturn));

/* setup.c: GP_SETUP, and what it leaves for execs and file ops. */
void setup_handle(const uint8_t *p, size_t len);
const char *setup_exec_root(void);	    /* GUEST_EXEC_ROOT or "/" */
const void *setup_seccomp(size_t *n_insns); /* NULL when SETUP carried none */
int setup_network(void);		    /* GP_NET_* */
int net_lo_up(void);			    /* -errno */

/* cgroup.c: one cgroup v2 per exec. */
struct cgroup {
	char path[96];
	int dirfd;
};
int cg_init(void); /* enable the controllers at the root: -errno */
int cg_create(struct cgroup *cg, uint32_t chan, uint64_t mem, uint64_t pids);
void cg_kill(const struct cgroup *cg);
int cg_freeze(const struct cgroup *cg, bool frozen);
uint64_t cg_read_key(const struct cgroup *cg, const char *file, const char *key);
uint64_t cg_read_u64(const struct cgroup *cg, const char *file);
void cg_signal(const struct cgroup *cg, int sig);
void cg_destroy(struct cgroup *cg); /* kill, then rmdir (retried by cg_reap_tick) */
bool cg_reap_tick(void);	    /* true while some cgroup is left to remove */

/* exec.c */
void exec_start(uint32_t chan, const uint8_t *p, size_t len);
void exec_frame(struct chan *c, const struct gp_hdr *h, const uint8_t *p);
bool exec_reaped(pid_t pid, int status); /* true when pid was an exec's */
void exec_tick(void);
bool exec_any(void);
int exec_freeze_all(bool frozen);
void exec_kill_all(void);

/* egress.c */
int egress_listen(void);
void egress_frame(struct chan *c, const struct gp_hdr *h, const uint8_t *p);

/* files.c */
void files_request(uint32_t chan, const struct gp_hdr *h, const uint8_t *p);
void files_frame(struct chan *c, const struct gp_hdr *h, const uint8_t *p);

/* A string field into a fixed buffer, or an answer of GP_ERROR on chan: 0 / -1. */
int field_str(uint32_t chan, const struct gp_field *f, char *out, size_t cap, const char *what);
int field_u64(uint32_t chan, const struct gp_field *f, uint64_t *v, const char *what);
/* A request's integer fields as data: the tag and where its value lands in the request. */
struct u64_field {
	uint16_t tag;
	size_t off;
};
/* f into req at its table entry: 0 (also for a tag not in the table: a newer peer's field,
 * skipped), or -1 after answering GP_ERROR. */
int field_u64_table(uint32_t chan, const struct gp_field *f, const struct u64_field *table,
		    size_t n, void *req, const char *what);

#endif
