/* verbs.c: the verbs that act on an existing container's state and cgroup: state, kill,
 * delete, pause, resume, ps, update, list; features; the config loaded through the floor. */
#include "lib/runtime/verbs.h"

#include "common/kernel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ocirt_load_checked(const char *bundle, struct ocirt_config **out)
{
	agentd_error err = {0};
	struct ocirt_allow allow = {0};
	*out = NULL;
	if (ocirt_config_load(bundle, out, &err) < 0 || ocirt_allow_load(*out, &allow, &err) < 0 ||
	    ocirt_floor_apply(*out, &allow, &err) < 0) {
		ocirt_config_free(*out);
		*out = NULL;
		return ocirt_fail("%s", err.msg), -1;
	}
	return 0;
}

static int open_one(int argc, char **argv, bool lock, struct ocirt_state *st)
{
	if (argc != 2) {
		memset(st, 0, sizeof(*st));
		st->dirfd = st->lockfd = -1;
		return ocirt_fail("%s: exactly one container id expected", argv[0]), -1;
	}
	return ocirt_state_open(argv[1], lock, st);
}

int ocirt_cmd_state(int argc, char **argv)
{
	struct ocirt_state st;
	int rc = 1;
	if (open_one(argc, argv, false, &st) == 0) {
		json_t *o = ocirt_state_json(&st);
		char *s = json_dumps(o, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(o);
		rc = 0;
	}
	ocirt_state_close(&st);
	return rc;
}

int ocirt_signal_parse(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},	    {"QUIT", SIGQUIT}, {"ILL", SIGILL},
		    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},   {"IOT", SIGIOT},   {"BUS", SIGBUS},
		    {"FPE", SIGFPE},   {"KILL", SIGKILL},   {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
		    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},   {"ALRM", SIGALRM}, {"TERM", SIGTERM},
		    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
		    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},   {"TTOU", SIGTTOU}, {"URG", SIGURG},
		    {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},   {"VTALRM", SIGVTALRM},
		    {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"POLL", SIGPOLL},
		    {"PWR", SIGPWR},   {"SYS", SIGSYS}};
	if (a_digit(s[0])) {
		char *end;
		long n = strtol(s, &end, 10);
		return *end || n < 1 || n > SIGRTMAX ? -1 : (int)n;
	}
	if (!strncmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		if (!strcasecmp(s, sigs[i].name))
			return sigs[i].sig;
	return -1;
}

int ocirt_cmd_kill(int argc, char **argv)
{
	bool all = false;
	const struct ocirt_opt opts[] = {{"all", 'a', false, NULL, &all, NULL},
					 {NULL, 0, false, NULL, NULL, NULL}};
	int i;
	if (ocirt_parse_opts(argc, argv, opts, &i) < 0)
		return 1;
	if (i >= argc || argc - i > 2)
		return ocirt_fail("kill: usage: kill [--all] ID [SIGNAL]");
	int sig = argc - i == 2 ? ocirt_signal_parse(argv[i + 1]) : SIGTERM;
	if (sig < 0)
		return ocirt_fail("kill: unknown signal '%s'", argv[i + 1]);
	struct ocirt_state st;
	int rc = 1;
	if (ocirt_state_open(argv[i], false, &st) < 0)
		goto out;
	if (all) {
		struct ocirt_cgroup cg;
		if (ocirt_cgroup_open(st.cgroup, false, &cg) == 0) {
			(void)ocirt_cgroup_signal_all(&cg, sig);
			ocirt_cgroup_free(&cg);
			rc = 0;
		} else if (!ocirt_init_alive(&st)) {
			rc = 0;	/* nothing left to signal */
		}
		goto out;
	}
	int pidfd = ocirt_init_pidfd(&st);
	if (pidfd < 0) {
		ocirt_fail("container %s is not running", st.id);
		goto out;
	}
	if (sys_pidfd_send_signal(pidfd, sig) < 0)
		ocirt_fail("kill %s: %s", st.id, strerror(errno));
	else
		rc = 0;
	close(pidfd);
out:
	ocirt_state_close(&st);
	return rc;
}

/* Remove a container: processes, cgroup, state dir. The init's zombie (the caller's child
 * until it reaps it) holds nothing. */
static int destroy(struct ocirt_state *st)
{
	struct ocirt_cgroup cg;
	int rc = 0;
	int pidfd = ocirt_init_pidfd(st);
	if (pidfd >= 0) {
		(void)sys_pidfd_send_signal(pidfd, SIGKILL);
		close(pidfd);
	}
	if (st->cgroup && ocirt_cgroup_open(st->cgroup, false, &cg) == 0) {
		rc = ocirt_cgroup_destroy(&cg);
		ocirt_cgroup_free(&cg);
	}
	/* issue 16: rt-egress. After the cgroup's kill (a frozen v1 cgroup holds a SIGKILL
	 * until thawed): the proxy helper gone, waited for */
	ocirt_egress_stop(st);
	for (int waited = 0; waited < 3000 && ocirt_init_alive(st); waited += 5) {
		struct timespec ts = {0, 5000000L};
		nanosleep(&ts, NULL);
	}
	if (rc == 0)
		rc = ocirt_state_remove(st);
	if (rc == 0)
		ocirt_userns_forget(st);
	return rc ? 1 : 0;
}

int ocirt_cmd_delete(int argc, char **argv)
{
	bool force = false;
	const struct ocirt_opt opts[] = {{"force", 'f', false, NULL, &force, NULL},
					 {NULL, 0, false, NULL, NULL, NULL}};
	int i;
	if (ocirt_parse_opts(argc, argv, opts, &i) < 0)
		return 1;
	if (i != argc - 1)
		return ocirt_fail("delete: exactly one container id expected");
	struct ocirt_state st;
	int rc = 1;
	if (ocirt_state_open(argv[i], true, &st) < 0) {
		/* a create that died half-way: its dir without state.json */
		if (force && st.dirfd >= 0) {
			struct ocirt_cgroup cg;
			_cleanup_(freep) char *path = ocirt_cgroup_path(NULL, argv[i]);
			if (path && ocirt_cgroup_open(path, false, &cg) == 0) {
				(void)ocirt_cgroup_destroy(&cg);
				ocirt_cgroup_free(&cg);
			}
			rc = ocirt_state_remove(&st) < 0;
		} else if (force && ocirt_id_valid(argv[i])) {
			rc = 0;	/* runc: delete --force of a missing container succeeds */
		}
		ocirt_state_close(&st);
		return rc;
	}
	enum ocirt_status s = ocirt_status(&st);
	if ((s == OCIRT_RUNNING || s == OCIRT_PAUSED) && !force)
		ocirt_fail("cannot delete container %s that is not stopped: %s (use --force)",
			   st.id, ocirt_status_name(s));
	else
		rc = destroy(&st);
	ocirt_state_close(&st);
	return rc;
}

static int pause_resume(int argc, char **argv, bool frozen)
{
	struct ocirt_state st;
	int rc = 1;
	if (open_one(argc, argv, true, &st) == 0) {
		enum ocirt_status s = ocirt_status(&st);
		struct ocirt_cgroup cg;
		if (s != (frozen ? OCIRT_RUNNING : OCIRT_PAUSED) && s != OCIRT_CREATED)
			ocirt_fail("container %s is %s, not %s", st.id, ocirt_status_name(s),
				   frozen ? "running" : "paused");
		else if (ocirt_cgroup_open(st.cgroup, false, &cg) == 0) {
			rc = ocirt_cgroup_freeze(&cg, frozen) < 0;
			ocirt_cgroup_free(&cg);
		} else
			ocirt_fail("container %s: its cgroup %s is gone", st.id, st.cgroup);
	}
	ocirt_state_close(&st);
	return rc;
}

int ocirt_cmd_pause(int argc, char **argv) { return pause_resume(argc, argv, true); }
int ocirt_cmd_resume(int argc, char **argv) { return pause_resume(argc, argv, false); }

static void ps_table(const pid_t *pids, size_t n)
{
	printf("%-8s %-8s %s\n", "PID", "PPID", "CMD");
	for (size_t i = 0; i < n; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
		size_t len;
		_cleanup_(freep) char *stat = read_file_at(AT_FDCWD, path, 4096, &len);
		char *open = stat ? strchr(stat, '(') : NULL, *close = stat ? strrchr(stat, ')') : NULL;
		if (!open || !close || close < open)
			continue;
		*close = 0;
		int ppid = 0;
		(void)sscanf(close + 2, "%*c %d", &ppid);
		printf("%-8d %-8d %s\n", (int)pids[i], ppid, open + 1);
	}
}

int ocirt_cmd_ps(int argc, char **argv)
{
	const char *format = "table";
	const struct ocirt_opt opts[] = {{"format", 'f', true, &format, NULL, NULL},
					 {NULL, 0, false, NULL, NULL, NULL}};
	int i;
	if (ocirt_parse_opts(argc, argv, opts, &i) < 0)
		return 1;
	if (i >= argc)
		return ocirt_fail("ps: a container id expected");
	if (strcmp(format, "table") && strcmp(format, "json"))
		return ocirt_fail("ps --format %s: table or json", format);
	struct ocirt_state st;
	struct ocirt_cgroup cg;
	int rc = 1;
	if (ocirt_state_open(argv[i], false, &st) == 0) {
		size_t n = 0;
		pid_t *pids = NULL;
		if (ocirt_cgroup_open(st.cgroup, false, &cg) == 0) {
			pids = ocirt_cgroup_pids(&cg, &n);
			ocirt_cgroup_free(&cg);
		}
		/* issue 16: rt-egress. The proxy helper is charged to the cgroup, not one of
		 * the container's processes */
		for (size_t k = 0; k < n && st.proxy_pid > 0; k++)
			if (pids[k] == st.proxy_pid)
				pids[k--] = pids[--n];
		if (!strcmp(format, "json")) {
			json_t *a = json_array();
			for (size_t k = 0; k < n; k++)
				json_array_append_new(a, json_integer(pids[k]));
			char *s = json_dumps(a, JSON_COMPACT);
			printf("%s\n", s);
			free(s);
			json_decref(a);
		} else {
			ps_table(pids, n);
		}
		free(pids);
		rc = 0;
	}
	ocirt_state_close(&st);
	return rc;
}

static int64_t parse_bytes(const char *s, bool *bad)
{
	uint64_t v;
	if (!strcmp(s, "-1"))
		return -1;
	if (parse_size(s, &v, NULL) < 0 || v > INT64_MAX) {
		*bad = true;
		return 0;
	}
	return (int64_t)v;
}

static int update_from_file(const char *path, struct ocirt_resources *r)
{
	json_error_t je;
	json_t *o = !strcmp(path, "-") ? json_loadf(stdin, 0, &je) : json_load_file(path, 0, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return ocirt_fail("update -r %s: %s", path, je.text), -1;
	}
	json_t *m = json_object_get(o, "memory"), *c = json_object_get(o, "cpu"),
	       *p = json_object_get(o, "pids");
	if (json_is_integer(json_object_get(m, "limit")))
		r->memory_limit = json_integer_value(json_object_get(m, "limit"));
	if (json_is_integer(json_object_get(m, "swap")))
		r->memory_swap = json_integer_value(json_object_get(m, "swap"));
	if (json_is_integer(json_object_get(m, "reservation")))
		r->memory_reservation = json_integer_value(json_object_get(m, "reservation"));
	if (json_is_integer(json_object_get(c, "shares")))
		r->cpu_shares = (uint64_t)json_integer_value(json_object_get(c, "shares"));
	if (json_is_integer(json_object_get(c, "quota")))
		r->cpu_quota = json_integer_value(json_object_get(c, "quota"));
	if (json_is_integer(json_object_get(c, "period")))
		r->cpu_period = (uint64_t)json_integer_value(json_object_get(c, "period"));
	if (json_is_integer(json_object_get(p, "limit")))
		r->pids_limit = json_integer_value(json_object_get(p, "limit"));
	json_decref(o);
	return 0;
}

int ocirt_cmd_update(int argc, char **argv)
{
	const char *file = NULL, *mem = NULL, *swap = NULL, *resv = NULL, *pids = NULL,
		   *quota = NULL, *period = NULL, *shares = NULL, *cpus = NULL, *mems = NULL;
	const struct ocirt_opt opts[] = {
		{"resources", 'r', true, &file, NULL, NULL},
		{"memory", 'm', true, &mem, NULL, NULL},
		{"memory-swap", 0, true, &swap, NULL, NULL},
		{"memory-reservation", 0, true, &resv, NULL, NULL},
		{"pids-limit", 0, true, &pids, NULL, NULL},
		{"cpu-quota", 0, true, &quota, NULL, NULL},
		{"cpu-period", 0, true, &period, NULL, NULL},
		{"cpu-share", 0, true, &shares, NULL, NULL},
		{"cpuset-cpus", 0, true, &cpus, NULL, NULL},
		{"cpuset-mems", 0, true, &mems, NULL, NULL},
		{NULL, 0, false, NULL, NULL, NULL},
	};
	int i;
	if (ocirt_parse_opts(argc, argv, opts, &i) < 0)
		return 1;
	if (i != argc - 1)
		return ocirt_fail("update: exactly one container id expected");
	struct ocirt_resources r = {.memory_limit = -1, .memory_swap = -1,
				    .memory_reservation = -1};
	bool bad = false;
	if (file && update_from_file(file, &r) < 0)
		return 1;
	if (mem)
		r.memory_limit = parse_bytes(mem, &bad);
	if (swap)
		r.memory_swap = parse_bytes(swap, &bad);
	if (resv)
		r.memory_reservation = parse_bytes(resv, &bad);
	if (pids)
		r.pids_limit = strtoll(pids, NULL, 10);
	if (quota)
		r.cpu_quota = strtoll(quota, NULL, 10);
	if (period)
		r.cpu_period = strtoull(period, NULL, 10);
	if (shares)
		r.cpu_shares = strtoull(shares, NULL, 10);
	r.cpuset_cpus = (char *)cpus;
	r.cpuset_mems = (char *)mems;
	if (bad)
		return ocirt_fail("update: a size like 512M or a byte count expected");
	struct ocirt_state st;
	struct ocirt_cgroup cg;
	int rc = 1;
	if (ocirt_state_open(argv[i], true, &st) == 0) {
		if (!ocirt_init_alive(&st))
			ocirt_fail("container %s is not running", st.id);
		else if (ocirt_cgroup_open(st.cgroup, false, &cg) == 0) {
			rc = ocirt_cgroup_set(&cg, &r) < 0;
			ocirt_cgroup_free(&cg);
		}
	}
	ocirt_state_close(&st);
	return rc;
}

int ocirt_cmd_list(int argc, char **argv)
{
	bool quiet = false;
	const char *format = "table";
	const struct ocirt_opt opts[] = {{"quiet", 'q', false, NULL, &quiet, NULL},
					 {"format", 'f', true, &format, NULL, NULL},
					 {NULL, 0, false, NULL, NULL, NULL}};
	int i;
	if (ocirt_parse_opts(argc, argv, opts, &i) < 0)
		return 1;
	(void)argc;
	bool json = !strcmp(format, "json");
	json_t *arr = json_array();
	DIR *d = opendir(ocirt_g.root);
	if (!json && !quiet)
		printf("%-24s %-8s %-10s %s\n", "ID", "PID", "STATUS", "BUNDLE");
	for (struct dirent *e; d && (e = readdir(d));) {
		struct ocirt_state st;
		if (e->d_name[0] == '.' || !ocirt_id_valid(e->d_name))
			continue;
		int fd = dup(2), nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
		dup2(nul, 2);	/* a half-created one is listed by nobody, as runc does */
		int r = ocirt_state_open(e->d_name, false, &st);
		dup2(fd, 2);
		close(fd);
		close(nul);
		if (r == 0) {
			json_t *o = ocirt_state_json(&st);
			if (json)
				json_array_append(arr, o);
			else if (quiet)
				printf("%s\n", st.id);
			else
				printf("%-24s %-8d %-10s %s\n", st.id,
				       (int)json_integer_value(json_object_get(o, "pid")),
				       json_string_value(json_object_get(o, "status")), st.bundle);
			json_decref(o);
		}
		ocirt_state_close(&st);
	}
	if (d)
		closedir(d);
	if (json) {
		char *s = json_dumps(arr, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
	}
	json_decref(arr);
	return 0;
}
