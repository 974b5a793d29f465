/* cmd_process.c: `agentd sandbox spawn|ps|logs|kill|stdin` — background processes of a
 * sandbox through the daemon API (docs/cli.md#processes, docs/api.md#processes). */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum { P_SOCKET = 0x300, P_JSON, P_TTY, P_STDIN, P_ENV, P_WORKDIR, P_FOLLOW, P_OFFSET,
       P_STDOUT, P_STDERR, P_RAW, P_SIGNAL, P_CLOSE };

struct proc_opts {
	const char *socket;
	bool json, tty, want_stdin, follow, only_out, only_err, raw, close;
	const char *workdir, *offset, *signal;
	json_t *env;
};

static void process_usage(FILE *f)
{
	fprintf(f,
		"usage: agentd sandbox spawn [--tty] [--stdin] [--env K=V] [--workdir D] ID -- PROG ARGS...\n"
		"                                          starts it in the background, prints its pid\n"
		"       agentd sandbox ps [--json] ID      its processes\n"
		"       agentd sandbox logs [--follow] [--offset N] [--stdout|--stderr] [--raw] [--json] ID PID\n"
		"       agentd sandbox kill [--signal NAME] ID PID   without --signal: its whole tree,\n"
		"                                          and it is forgotten\n"
		"       agentd sandbox stdin [--close] ID PID      sends our stdin to its stdin\n"
		"  --socket PATH  the daemon's socket (default $AGENTD_SOCKET or /run/agentd/agentd.sock)\n");
}

static int parse(int argc, char **argv, bool in_order, struct proc_opts *o)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, P_SOCKET},
		{"json", no_argument, NULL, P_JSON},
		{"tty", no_argument, NULL, P_TTY},
		{"stdin", no_argument, NULL, P_STDIN},
		{"env", required_argument, NULL, P_ENV},
		{"workdir", required_argument, NULL, P_WORKDIR},
		{"follow", no_argument, NULL, P_FOLLOW},
		{"offset", required_argument, NULL, P_OFFSET},
		{"stdout", no_argument, NULL, P_STDOUT},
		{"stderr", no_argument, NULL, P_STDERR},
		{"raw", no_argument, NULL, P_RAW},
		{"signal", required_argument, NULL, P_SIGNAL},
		{"close", no_argument, NULL, P_CLOSE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	opterr = 0;
	/* spawn's options stop at its ID (the command keeps its own); the others take them
	 * anywhere */
	while ((c = getopt_long(argc, argv, in_order ? "+:hitf" : ":hitf", opts, NULL)) != -1) {
		switch (c) {
		case P_SOCKET: o->socket = optarg; break;
		case P_JSON: o->json = true; break;
		case 't': case P_TTY: o->tty = true; break;
		case 'i': case P_STDIN: o->want_stdin = true; break;
		case P_WORKDIR: o->workdir = optarg; break;
		case 'f': case P_FOLLOW: o->follow = true; break;
		case P_OFFSET: o->offset = optarg; break;
		case P_STDOUT: o->only_out = true; break;
		case P_STDERR: o->only_err = true; break;
		case P_RAW: o->raw = true; break;
		case P_SIGNAL: o->signal = optarg; break;
		case P_CLOSE: o->close = true; break;
		case P_ENV:
			if (cli_env_opt(o->env, optarg) < 0)
				return -1;
			break;
		case 'h':
			process_usage(stdout);
			exit(0);
		default:
			return cli_bad_option("sandbox", c, argv);
		}
	}
	return optind;
}

/* ID and PID: the two arguments of ps (ID only), logs, kill, stdin. */
static int ids(const char *sub, int argc, char **argv, int i, bool want_pid, char *path,
	       size_t size)
{
	if (argc - i != (want_pid ? 2 : 1)) {
		print_error("sandbox %s: expected ID%s (see agentd sandbox %s --help)", sub,
			    want_pid ? " PID" : "", sub);
		return -1;
	}
	const char *id = argv[i];
	if (strlen(id) > 64 || strchr(id, '/') || strchr(id, '?')) {
		print_error("sandbox %s: bad sandbox id '%.64s'", sub, id);
		return -1;
	}
	if (!want_pid) {
		snprintf(path, size, "/v1/sandboxes/%s/processes", id);
		return 0;
	}
	const char *pid = argv[i + 1];
	if (!*pid || strspn(pid, "0123456789") != strlen(pid) || strlen(pid) > 10) {
		print_error("sandbox %s: bad pid '%.32s' (a number, as `agentd sandbox ps` shows)",
			    sub, pid);
		return -1;
	}
	snprintf(path, size, "/v1/sandboxes/%s/processes/%s", id, pid);
	return 0;
}

/* One JSON call; the answer (status ok) or an error report. */
static json_t *call(const struct proc_opts *o, const char *sub, const char *method,
		    const char *path, json_t *body, int ok, int *rc)
{
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(o->socket, method, path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("sandbox %s: %s", sub, err.msg);
		*rc = EXIT_AGENTD;
		return NULL;
	}
	if (status != ok) {
		*rc = client_report_error(sub, status, j);
		json_decref(j);
		return NULL;
	}
	*rc = 0;
	return j;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | term_json_flags());
	puts(s);
	free(s);
}

static int do_spawn(struct proc_opts *o, int argc, char **argv, int i)
{
	if (i >= argc || !strcmp(argv[i - 1], "--")) {
		print_error("sandbox spawn: the sandbox ID is missing: agentd sandbox spawn "
			    "[options] ID -- PROG ARGS... (see agentd sandbox spawn --help)");
		return EXIT_AGENTD;
	}
	char path[160];
	if (ids("spawn", i + 1, argv, i, false, path, sizeof(path)) < 0)
		return EXIT_AGENTD;
	i++;
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) {
		print_error("sandbox spawn: no command given after the ID: agentd sandbox spawn "
			    "[options] ID -- PROG ARGS...");
		return EXIT_AGENTD;
	}
	json_t *av = json_array();
	for (; i < argc; i++)
		json_array_append_new(av, json_string(argv[i]));
	json_t *body = json_pack("{s:o, s:b, s:b}", "argv", av, "tty", o->tty, "stdin",
				 o->want_stdin);
	if (json_object_size(o->env))
		json_object_set(body, "env", o->env);
	if (o->workdir)
		json_object_set_new(body, "workdir", json_string(o->workdir));
	if (o->tty && isatty(0)) {
		struct winsize ws;
		if (ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
			json_object_set_new(body, "rows", json_integer(ws.ws_row));
			json_object_set_new(body, "cols", json_integer(ws.ws_col));
		}
	}
	int rc;
	json_t *j = call(o, "spawn", "POST", path, body, 201, &rc);
	if (!j)
		return rc;
	if (o->json)
		print_json(j);
	else
		printf("%lld\n", (long long)json_integer_value(json_object_get(j, "pid")));
	json_decref(j);
	return 0;
}

static const char *ended_text(json_t *p, char *buf, size_t size)
{
	const char *state = json_string_value(json_object_get(p, "state"));
	const char *sig = json_string_value(json_object_get(p, "signal"));
	if (state && !strcmp(state, "running"))
		return "running";
	if (sig)
		snprintf(buf, size, "killed (%s)", sig);
	else
		snprintf(buf, size, "exited (%lld)",
			 (long long)json_integer_value(json_object_get(p, "exit_code")));
	return buf;
}

static int do_ps(struct proc_opts *o, int argc, char **argv, int i)
{
	char path[160];
	if (ids("ps", argc, argv, i, false, path, sizeof(path)) < 0)
		return EXIT_AGENTD;
	int rc;
	json_t *j = call(o, "ps", "GET", path, NULL, 200, &rc);
	if (!j)
		return rc;
	json_t *procs = json_object_get(j, "processes");
	if (o->json) {
		print_json(procs);
		json_decref(j);
		return 0;
	}
	/* argv is the sandbox's: escaped on a terminal like its output */
	struct term_out t;
	term_out_init(&t, 1, false);
	char line[256];
	int n = snprintf(line, sizeof(line), "%-8s  %-14s  %-12s  %s\n", "PID", "STATE", "OUTPUT",
			 "COMMAND");
	term_out_write(&t, (const uint8_t *)line, (size_t)n);
	size_t k;
	json_t *p;
	json_array_foreach(procs, k, p) {
		char st[64];
		json_t *out = json_object_get(json_object_get(p, "output"), "stdout");
		json_t *err = json_object_get(json_object_get(p, "output"), "stderr");
		long long total = json_integer_value(json_object_get(out, "total_bytes")) +
				  json_integer_value(json_object_get(err, "total_bytes"));
		n = snprintf(line, sizeof(line), "%-8lld  %-14s  %-12lld ",
			     (long long)json_integer_value(json_object_get(p, "pid")),
			     ended_text(p, st, sizeof(st)), total);
		term_out_write(&t, (const uint8_t *)line, (size_t)n);
		size_t a;
		json_t *arg;
		json_array_foreach(json_object_get(p, "argv"), a, arg) {
			term_out_write(&t, (const uint8_t *)" ", 1);
			term_out_write(&t, (const uint8_t *)json_string_value(arg),
				       json_string_length(arg));
		}
		term_out_write(&t, (const uint8_t *)"\n", 1);
	}
	term_out_flush(&t);
	json_decref(j);
	return 0;
}

struct logs_state {
	bool json;
	int rc;
	struct term_out term[2];
};

static void on_log_line(void *ud, const char *line, size_t len)
{
	struct logs_state *st = ud;
	json_t *j = ndjson_line(line, len, st->json);
	if (!j)
		return;
	const char *name = json_string_value(json_object_get(j, "stream"));
	json_t *dropped = json_object_get(j, "dropped");
	json_t *ex = json_object_get(j, "exit");
	if (ex) {
		/* the process's own exit code, as `sandbox exec` passes it through */
		st->rc = (int)json_integer_value(json_object_get(ex, "exit_code"));
	} else if (dropped && !st->json) {
		print_error("%s: %lld older bytes were dropped (the ring keeps the last "
			    "limits.max_process_output_bytes); from offset %lld",
			    name ? name : "output", (long long)json_integer_value(dropped),
			    (long long)json_integer_value(json_object_get(j, "offset")));
	} else if (!st->json && name) {
		write_decoded(&st->term[strcmp(name, "stderr") ? 0 : 1], json_object_get(j, "data"),
			      json_string_value(json_object_get(j, "encoding")));
	}
	json_decref(j);
}

static int do_logs(struct proc_opts *o, int argc, char **argv, int i)
{
	char path[200];
	if (ids("logs", argc, argv, i, true, path, sizeof(path)) < 0)
		return EXIT_AGENTD;
	if (o->offset && strspn(o->offset, "0123456789") != strlen(o->offset)) {
		print_error("sandbox logs: --offset: expected a byte offset, got '%s'", o->offset);
		return EXIT_AGENTD;
	}
	char *full = NULL;
	if (asprintf(&full, "%s/output?stream=%s%s%s%s", path,
		     o->only_out ? "stdout" : o->only_err ? "stderr" : "both",
		     o->follow ? "&follow=1" : "", o->offset ? "&offset=" : "",
		     o->offset ? o->offset : "") < 0)
		abort();
	agentd_error err = {0};
	struct client_conn c;
	if (client_connect(o->socket, &c, &err) < 0) {
		free(full);
		print_error("sandbox logs: %s", err.msg);
		return EXIT_AGENTD;
	}
	struct logs_state st = {.json = o->json};
	term_out_init(&st.term[0], 1, o->raw);
	term_out_init(&st.term[1], 2, o->raw);
	struct http_response resp;
	int r = client_request(&c, "GET", full, NULL, NULL, 0, &resp, on_log_line, &st, &err);
	free(full);
	client_close(&c);
	term_out_flush(&st.term[0]);
	term_out_flush(&st.term[1]);
	if (r < 0) {
		print_error("sandbox logs: %s", err.msg);
		return EXIT_AGENTD;
	}
	int rc = st.rc;
	if (resp.status != 200) {
		json_t *j = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
		rc = client_report_error("sandbox logs", resp.status, j);
		json_decref(j);
	}
	http_response_free(&resp);
	return rc;
}

/* kill and stdin: one call, whose answer is printed with --json. */
static int call_and_print(const struct proc_opts *o, const char *sub, const char *method,
			  const char *path, json_t *body)
{
	int rc;
	json_t *j = call(o, sub, method, path, body, 200, &rc);
	if (j && o->json)
		print_json(j);
	json_decref(j);
	return rc;
}

static int do_kill(struct proc_opts *o, int argc, char **argv, int i)
{
	char path[200];
	if (ids("kill", argc, argv, i, true, path, sizeof(path)) < 0)
		return EXIT_AGENTD;
	if (!o->signal)
		return call_and_print(o, "kill", "DELETE", path, NULL);
	char *end;
	long n = strtol(o->signal, &end, 10);
	json_t *sig = *o->signal && !*end ? json_integer(n) : json_string(o->signal);
	strncat(path, "/signal", sizeof(path) - strlen(path) - 1);
	return call_and_print(o, "kill", "POST", path, json_pack("{s:o}", "signal", sig));
}

static int do_stdin(struct proc_opts *o, int argc, char **argv, int i)
{
	char path[200];
	if (ids("stdin", argc, argv, i, true, path, sizeof(path)) < 0)
		return EXIT_AGENTD;
	strncat(path, "/stdin", sizeof(path) - strlen(path) - 1);
	size_t n = 0;
	uint8_t *in = isatty(0) && o->close ? NULL : read_fd_all(0, &n);
	char *enc = base64_encode(in ? in : (const uint8_t *)"", n);
	free(in);
	json_t *body = json_pack("{s:s, s:s, s:b}", "data", enc, "encoding", "base64", "close",
				 o->close);
	free(enc);
	return call_and_print(o, "stdin", "POST", path, body);
}

int cmd_process(const char *sub, int argc, char **argv)
{
	struct proc_opts o = {.env = json_object()};
	int i = parse(argc, argv, !strcmp(sub, "spawn"), &o);
	int rc = EXIT_AGENTD;
	if (i < 0)
		goto out;
	o.socket = socket_path_default(o.socket);
	if (!strcmp(sub, "spawn"))
		rc = do_spawn(&o, argc, argv, i);
	else if (!strcmp(sub, "ps"))
		rc = do_ps(&o, argc, argv, i);
	else if (!strcmp(sub, "logs"))
		rc = do_logs(&o, argc, argv, i);
	else if (!strcmp(sub, "kill"))
		rc = do_kill(&o, argc, argv, i);
	else
		rc = do_stdin(&o, argc, argv, i);
out:
	json_decref(o.env);
	return rc;
}
