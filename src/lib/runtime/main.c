/* main.c: the runc-compatible command line: global flags (--root, --log, --log-format,
 * --debug, --systemd-cgroup, --version), errors as runc writes them, and the verb table. */
#include "lib/runtime/verbs.h"

#include <agentd.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct ocirt_globals ocirt_g = {.root = OCIRT_DEFAULT_ROOT};

void ocirt_time_now(char *buf, size_t size)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

char *ocirt_log_text(const char *level, const char *msg)
{
	char when[64];
	ocirt_time_now(when, sizeof(when));
	char *line = NULL;
	if (ocirt_g.log_json) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "level", level, "msg", msg, "time", when);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (s)
			line = xasprintf("%s\n", s);
		free(s);
	} else {
		line = xasprintf("time=\"%s\" level=%s msg=\"%s\"\n", when, level, msg);
	}
	return line;
}

static void log_line(const char *level, const char *msg)
{
	if (!ocirt_g.log_path)
		return;
	int fd = open(ocirt_g.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	char *line = ocirt_log_text(level, msg);
	if (line)
		(void)write_all(fd, line, strlen(line));
	free(line);
	close(fd);
}

int ocirt_fail(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_line("error", msg);
	fprintf(stderr, "agentd-runc: %s\n", msg);
	return 1;
}

/* What runc warns of and runs anyway: on --log (level "warning"), on stderr only with
 * --debug (the engines pass the runtime's stderr on). */
void ocirt_warn(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_line("warning", msg);
	if (!ocirt_g.log_path && ocirt_g.debug)
		fprintf(stderr, "agentd-runc: warning: %s\n", msg);
}

void ocirt_warn_ambient(const struct ocirt_process *p)
{
	uint64_t skipped = p->cap_ambient & ~(p->cap_permitted & p->cap_inheritable);
	for (int cap = 0; cap < 64; cap++)
		if (skipped & (1ull << cap))
			ocirt_warn("process.capabilities.ambient: %s is not both permitted and "
				   "inheritable: not raised", ocirt_cap_name(cap));
}

void ocirt_debug(const char *fmt, ...)
{
	if (!ocirt_g.debug)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_line("debug", msg);
	if (!ocirt_g.log_path)
		fprintf(stderr, "agentd-runc: debug: %s\n", msg);
}

static const struct ocirt_opt *opt_find(const struct ocirt_opt *opts, const char *arg,
					size_t len, bool is_short)
{
	for (const struct ocirt_opt *o = opts; o && o->name; o++) {
		if (is_short ? (len == 1 && o->short_name == arg[0])
			     : (strlen(o->name) == len && !strncmp(o->name, arg, len)))
			return o;
	}
	return NULL;
}

int ocirt_parse_opts(int argc, char **argv, const struct ocirt_opt *opts, int *first_operand)
{
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (a[0] != '-' || !a[1])
			break;
		bool is_short = a[1] != '-';
		const char *name = a + (is_short ? 1 : 2);
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct ocirt_opt *o = opt_find(opts, name, len, is_short);
		if (!o)
			return ocirt_fail("%s: flag provided but not defined: %s", argv[0], a), -1;
		if (!o->has_arg) {
			if (eq && (!strcmp(eq + 1, "false") || !strcmp(eq + 1, "0")))
				*o->flag = false;
			else
				*o->flag = true;
			continue;
		}
		const char *val = eq ? eq + 1 : NULL;
		if (!val) {
			if (i + 1 >= argc)
				return ocirt_fail("%s: flag needs an argument: %s", argv[0], a), -1;
			val = argv[++i];
		}
		if (o->multi)
			strv_push(o->multi, val);
		else
			*o->value = val;
	}
	*first_operand = i;
	return 0;
}

static int cmd_version(void)
{
	printf("agentd-runc version %s\nspec: %s\nagentd: %s\n", AGENTD_VERSION, OCIRT_VERSION,
	       "runc-compatible OCI runtime");
	return 0;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--root DIR] [--log FILE] [--log-format text|json] [--debug]\n"
		"          [--systemd-cgroup] COMMAND [OPTIONS] ID\n\n"
		"commands (runc-compatible): create, start, run, state, kill, delete, exec, pause,\n"
		"  resume, ps, update, list, features; --version\n"
		"agentd's hardening is the floor: a config.json asking for more is refused naming\n"
		"the field unless %s allows it (docs/oci-runtime.md).\n",
		prog, OCIRT_OPERATOR_FILE);
}

int ocirt_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} verbs[] = {
		{"create", ocirt_cmd_create}, {"start", ocirt_cmd_start}, {"run", ocirt_cmd_run},
		{"state", ocirt_cmd_state},   {"kill", ocirt_cmd_kill},	  {"delete", ocirt_cmd_delete},
		{"exec", ocirt_cmd_exec},     {"pause", ocirt_cmd_pause}, {"resume", ocirt_cmd_resume},
		{"ps", ocirt_cmd_ps},	      {"update", ocirt_cmd_update}, {"list", ocirt_cmd_list},
		{"features", ocirt_cmd_features},
	};
	const char *log_format = NULL;
	bool version = false, help = false, ignored = false;
	const char *ignored_val = NULL;
	const struct ocirt_opt opts[] = {
		{"root", 0, true, &ocirt_g.root, NULL, NULL},
		{"log", 0, true, &ocirt_g.log_path, NULL, NULL},
		{"log-format", 0, true, &log_format, NULL, NULL},
		{"debug", 0, false, NULL, &ocirt_g.debug, NULL},
		{"systemd-cgroup", 0, false, NULL, &ocirt_g.systemd_cgroup, NULL},
		{"version", 'v', false, NULL, &version, NULL},
		{"help", 'h', false, NULL, &help, NULL},
		/* accepted for compatibility, no effect here */
		{"rootless", 0, true, &ignored_val, NULL, NULL},
		{"criu", 0, true, &ignored_val, NULL, NULL},
		{"no-new-keyring", 0, false, NULL, &ignored, NULL},
		{NULL, 0, false, NULL, NULL, NULL},
	};
	int i;
	if (ocirt_parse_opts(argc, argv, opts, &i) < 0)
		return 1;
	if (log_format && strcmp(log_format, "json") && strcmp(log_format, "text"))
		return ocirt_fail("--log-format: '%s' is neither text nor json", log_format);
	ocirt_g.log_json = log_format && !strcmp(log_format, "json");
	if (version)
		return cmd_version();
	if (help || i >= argc) {
		usage(help ? stdout : stderr, argv[0]);
		return help ? 0 : 1;
	}
	if (ocirt_g.root[0] != '/')
		return ocirt_fail("--root %s: must be an absolute path", ocirt_g.root);
	const char *verb = argv[i];
	ocirt_debug("%s: argv[%d..]", verb, i);
	for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
		if (!strcmp(verb, verbs[v].name))
			return verbs[v].fn(argc - i, argv + i);
	return ocirt_fail("unknown command '%s' (try: %s --help)", verb, argv[0]);
}

int agentd_oci_runtime_main(int argc, char **argv)
{
	return ocirt_main(argc, argv);
}
