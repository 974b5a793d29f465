/* cmd_run.c: `agentd run` — one command in a one-shot sandbox: policy flags → spec →
 * backend → sandbox → exec (streamed to our stdout/stderr, or one JSON object) → destroy. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int cancel_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
	if (cancel_pipe[1] >= 0) {
		char c = 1;
		if (write(cancel_pipe[1], &c, 1) < 0) {
			/* already signalled */
		}
	}
}

/* stdout and stderr as they come, escaped for a terminal (term.c) */
static void stream_out(void *ud, agentd_stream s, const uint8_t *data, size_t len)
{
	struct term_out *t = ud;
	term_out_write(&t[s == AGENTD_STREAM_STDOUT ? 0 : 1], data, len);
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: agentd run [--backend NAME|auto] [policy options] [--json] [-i] [--raw] [--trace-timing] -- PROG "
		"ARGS...\n\n"
		"  --backend NAME   backend name or alias, or auto (default: auto: the best\n"
		"                   backend here that enforces the whole policy)\n"
		"  --json           print one JSON object with the result instead of streaming\n"
		"  -i, --stdin      pass agentd's stdin to the command (default: /dev/null)\n"
		"  --raw            write the command's output to a terminal unescaped\n"
		"  --trace-timing   print where the time went, phase by phase, on stderr\n\n%s",
		policy_flags_help());
}

struct run_args {
	struct policy_flags pf;
	const char *backend;
	bool json, want_stdin, raw;
	char **argv;		/* the command */
};

/* Flags; 0, 1 when --help was answered, or -1 after an error message. */
static int parse_run_args(int argc, char **argv, struct run_args *ra)
{
	static const struct option opts[] = {
		{"backend", required_argument, NULL, 'b'},
		{"json", no_argument, NULL, 'j'},
		{"stdin", no_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{"trace-timing", no_argument, NULL, 'T'},
		{"raw", no_argument, NULL, 'R'},
		POLICY_LONG_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	memset(ra, 0, sizeof(*ra));
	ra->backend = "auto";
	agentd_error err = {0};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:b:jih", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			ra->backend = optarg;
			break;
		case 'j':
			ra->json = true;
			break;
		case 'i':
			ra->want_stdin = true;
			break;
		case 'h':
			run_usage(stdout);
			return 1;
		case 'T':
			break;	/* enabled by main(), before anything it times */
		case 'R':
			ra->raw = true;
			break;
		case '?':
		case ':':
			return cli_bad_option("run", c, argv);
		default:
			if (policy_flags_add(&ra->pf, c, optarg, &err) < 0) {
				print_error("run: %s", err.msg);
				return -1;
			}
		}
	}
	/* issue 13: with an image, none: its Entrypoint and Cmd (image_command) */
	ra->argv = optind < argc ? argv + optind : NULL;
	return 0;
}

/* issue 13: img-root. The image's Entrypoint then Cmd, as `docker run IMAGE` does: a
 * malloc'd argv (its strings the info's, kept in *info), or NULL after an error message. */
static char **image_command(agentd_backend *b, const char *ref, agentd_image_info *info)
{
	agentd_error err = {0};
	agentd_image_store *store = agentd_backend_image_store(b, &err);
	if (!store || agentd_image_inspect(store, ref, info, &err) < 0) {
		print_error("run: image %s: %s", ref, err.msg);
		return NULL;
	}
	const agentd_strv *parts[2] = {&info->config.entrypoint, &info->config.cmd};
	char **argv = calloc(parts[0]->n + parts[1]->n + 1, sizeof(char *));
	size_t n = 0;
	for (size_t p = 0; p < 2 && argv; p++)
		for (size_t i = 0; i < parts[p]->n; i++)
			argv[n++] = parts[p]->v[i];
	if (!argv || n == 0) {
		print_error("run: no command given, and image %s has no Entrypoint nor Cmd: "
			    "agentd run --image %s -- PROG ARGS...",
			    ref, ref);
		free(argv);
		return NULL;
	}
	return argv;
}

/* The backend by name, or for auto the best one here that enforces spec (or, degraded,
 * runs it); NULL after an error message. */
static agentd_backend *pick_backend(const char *name, const agentd_spec *spec,
				    const agentd_create_opts *opts)
{
	agentd_backend *backend = NULL;
	agentd_error err = {0};
	if (!strcasecmp(name, "auto") && agentd_select_backend(spec, opts, &name, &err) < 0) {
		print_error("%s", err.msg);
		return NULL;
	}
	if (agentd_create_backend(name, NULL, &backend, &err) < 0) {
		print_error("%s", err.msg);
		return NULL;
	}
	return backend;
}

/* Streamed output was written as it came; what remains to say goes to stderr, or the
 * whole result as one JSON object. */
static void report_result(const agentd_exec_output *o, bool json, const agentd_backend *b,
			  const char *sandbox_id, const agentd_spec *spec)
{
	for (size_t i = 0; i < o->unenforced.n; i++)
		print_error("warning: not enforced (--allow-degraded): %s", o->unenforced.v[i]);
	if (json) {
		char *s = agentd_exec_output_to_json(o, agentd_backend_name(b), sandbox_id);
		term_puts_json(s);
		free(s);
		return;
	}
	if (o->timed_out)
		print_error("timed out after %llu ms; the command and everything it started "
			    "were killed",
			    (unsigned long long)o->duration_ms);
	if (o->limit_hit != AGENTD_LIMIT_NONE && o->limit_hit != AGENTD_LIMIT_OUTPUT)
		print_error("%s limit hit", agentd_limit_kind_name(o->limit_hit));
	if (o->output_truncated)
		print_error("output over %llu bytes on a stream (max_output_bytes): its middle "
			    "was dropped, the head and the tail kept",
			    (unsigned long long)spec->limits.max_output_bytes);
}

int cmd_run(int argc, char **argv)
{
	struct run_args ra;
	int pr = parse_run_args(argc, argv, &ra);
	if (pr != 0)
		return pr > 0 ? 0 : EXIT_AGENTD;
	agentd_spec spec;
	agentd_error err = {0};
	if (policy_flags_build(&ra.pf, &spec, &err) < 0) {
		print_error("%s", err.msg);
		return EXIT_AGENTD;
	}
	trace_mark("policy built");
	agentd_create_opts copts = {.allow_degraded = ra.pf.allow_degraded};
	agentd_backend *backend = pick_backend(ra.backend, &spec, &copts);
	if (!backend) {
		agentd_spec_free(&spec);
		return EXIT_AGENTD;
	}
	trace_mark("backend ready");
	agentd_image_info image_info = {0};
	char **image_argv = NULL;
	if (!ra.argv && !spec.image) {
		print_error("run: no command given: agentd run [options] -- PROG ARGS... (see agentd "
			    "run --help)");
		agentd_backend_free(backend);
		agentd_spec_free(&spec);
		return EXIT_AGENTD;
	}
	if (!ra.argv && !(ra.argv = image_argv = image_command(backend, spec.image, &image_info))) {
		agentd_backend_free(backend);
		agentd_spec_free(&spec);
		return EXIT_AGENTD;
	}
	if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
		struct sigaction sa = {.sa_handler = on_signal};
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}

	int rc = EXIT_AGENTD;
	uint8_t *in = NULL;
	size_t in_len = 0;
	/* allowlist: this run's own egress proxy, for as long as the run (log on stderr) */
	agentd_proxy *proxy = NULL;
	if (spec.network.mode == AGENTD_NET_ALLOWLIST) {
		proxy = agentd_proxy_start(NULL, &err);
		if (!proxy) {
			print_error("run: %s", err.msg);
			goto out;
		}
		agentd_backend_set_proxy(backend, proxy);
	}
	if (ra.want_stdin && !(in = read_fd_all(0, &in_len))) {
		print_error("run: read stdin: %s", strerror(errno));
		goto out;
	}
	agentd_command cmd = {.argv = ra.argv, .stdin_data = in, .stdin_len = in_len};
	struct term_out term[2];
	term_out_init(&term[0], 1, ra.raw);
	term_out_init(&term[1], 2, ra.raw);
	agentd_exec_ctx ctx = {
		.on_output = ra.json ? NULL : stream_out,
		.userdata = term,
		.cancel_fd = cancel_pipe[0] > 0 ? cancel_pipe[0] : 0,
	};
	agentd_exec_output o;
	char sandbox_id[AGENTD_ID_LEN];
	int run_r = agentd_backend_run_opts(backend, &spec, &copts, &cmd, &ctx, &o, sandbox_id, &err);
	term_out_flush(&term[0]);
	term_out_flush(&term[1]);
	if (run_r < 0) {
		print_error("%s", err.msg);
		agentd_exec_output_free(&o);
		goto out;
	}
	report_result(&o, ra.json, backend, sandbox_id, &spec);
	rc = got_signal ? 128 + got_signal : o.exit_code;
	agentd_exec_output_free(&o);
out:
	free(in);
	free(image_argv);
	agentd_image_info_free(&image_info);
	agentd_backend_free(backend);
	agentd_proxy_stop(proxy);
	agentd_spec_free(&spec);
	if (trace_enabled()) {
		trace_mark("done");
		trace_print(stderr);
	}
	return rc;
}
