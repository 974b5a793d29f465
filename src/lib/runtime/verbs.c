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
#include <sys/wait.h>
#include <unistd.h>

int ocirt_load_checked(const char *bundle, struct ocirt_config **out)
{
	agentd_error err = {0};
	struct ocirt_allow allow = {0};
	*out = NULL;
	if (ocirt_config_load(bundle, out, &err) == 0)
		ocirt_floor_oom_warned(&(*out)->process);
	if (!*out || ocirt_allow_load(*out, &allow, &err) < 0 ||
	    ocirt_floor_apply(*out, &allow, &err) < 0) {
		ocirt_config_free(*out);
		*out = NULL;
		return ocirt_fail("%s", err.msg), -1;
	}
	return 0;
}

void ocirt_floor_oom_warned(struct ocirt_process *p)
{
	int asked = ocirt_floor_oom_score_adj(p);
	if (asked)
		ocirt_warn("process.oomScoreAdj: %d raised to 0 by agentd's floor (a container's "
			   "processes are never made safer from the OOM killer than the host's)",
			   asked);
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

/* The output of the host's `ps ARGS` (runc's default: -ef), stdout and stderr, bounded;
 * NULL after ocirt_fail when it cannot run or fails. */
static char *run_ps(char **args, int n_args)
{
	char *argv[64] = {"ps", "-ef", NULL};
	if (n_args > (int)ARRAY_SIZE(argv) - 2)
		return ocirt_fail("ps: at most %zu ps arguments", ARRAY_SIZE(argv) - 2), NULL;
	for (int i = 0; i < n_args; i++)
		argv[1 + i] = args[i];
	if (n_args)
		argv[1 + n_args] = NULL;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ocirt_fail("ps: pipe: %s", strerror(errno)), NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
			_exit(127);
		execvp("ps", argv);
		dprintf(2, "exec ps: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	size_t len = 0;
	char *out = pid < 0 ? NULL : read_fd_max(p[0], 64u << 20, &len);
	close(p[0]);
	int status = 0;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pid < 0 || !out || !WIFEXITED(status) || WEXITSTATUS(status)) {
		ocirt_fail("ps %s: %s", n_args ? args[0] : "-ef",
			   pid < 0 ? strerror(errno) : out ? out : "its output too large");
		free(out);
		return NULL;
	}
	return out;
}

/* The whitespace-separated field i of line (NUL-terminated copy in buf), or NULL. */
static const char *ps_field(const char *line, size_t i, char *buf, size_t size)
{
	for (size_t k = 0;; k++) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line)
			return NULL;
		size_t n = strcspn(line, " \t");
		if (k == i) {
			snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), line);
			return buf;
		}
		line += n;
	}
}

/* runc's table: the host's `ps` run with the args after the id (default -ef), its header,
 * then only the lines whose PID column is one of the container's. */
static int ps_table(const pid_t *pids, size_t n, char **args, int n_args)
{
	_cleanup_(freep) char *out = run_ps(args, n_args);
	if (!out)
		return 1;
	char *save = NULL, *header = strtok_r(out, "\n", &save), field[32];
	size_t col = 0;
	while (header && ps_field(header, col, field, sizeof(field)) && strcmp(field, "PID"))
		col++;
	if (!header || !ps_field(header, col, field, sizeof(field)))
		return ocirt_fail("ps: couldn't find PID field in ps output");
	printf("%s\n", header);
	for (char *line; (line = strtok_r(NULL, "\n", &save));) {
		char *end;
		if (!ps_field(line, col, field, sizeof(field)))
			continue;
		long pid = strtol(field, &end, 10);
		if (*end || end == field)
			return ocirt_fail("ps: unable to parse pid: %s", field);
		for (size_t k = 0; k < n; k++)
			if (pids[k] == pid) {
				printf("%s\n", line);
				break;
			}
	}
	return 0;
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
	/* the ps options after the id (runc ps ID -o pid,comm; a "--" before them is dropped) */
	char **ps_args = argv + i + 1;
	int n_ps_args = argc - i - 1;
	if (n_ps_args && !strcmp(ps_args[0], "--")) {
		ps_args++;
		n_ps_args--;
	}
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
			rc = 0;
		} else {
			rc = ps_table(pids, n, ps_args, n_ps_args);
		}
		free(pids);
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
