/* cmd_sandbox.c: `agentd sandbox create|exec|ls|inspect|usage|suspend|resume|rm|snapshot|
 * restore|cp` (port, ports: cmd_sandbox_port.c) — thin clients of the daemon API (docs/cli.md,
 * docs/api.md); exec passes the command's exit code through and streams with --stream. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_SOCKET = 0x200, OPT_JSON, OPT_NAME, OPT_BACKEND, OPT_STREAM, OPT_STDIN, OPT_XENV,
       OPT_XWORKDIR, OPT_XTIMEOUT, OPT_RAW,
       /* issue 12: names */
       OPT_LABEL, OPT_STATE,
       /* issue 12: snapshots */
       OPT_FROM_SNAPSHOT };

struct sbx_opts {
	const char *socket;
	bool json;
	const char *name;
	const char *backend;
	bool stream;
	bool want_stdin;
	bool raw;
	bool tty;			/* exec -t: on a terminal, attached (cmd_attach.c) */
	const char *timeout;
	const char *workdir;
	agentd_kvv env;
	struct policy_flags pf;
	bool policy_used;
	/* issue 12: names. ls's filters (--name and --backend filter too) */
	agentd_strv labels;
	const char *state;
	const char *ttl, *idle, *on_expire;	/* issue 12: ttl (create) */
	const char *from_snapshot;	/* issue 12: snapshots */
};

static void sandbox_usage(FILE *f)
{
	fprintf(f,
		"usage: agentd sandbox COMMAND [--socket PATH] [--json] ...\n\n"
		"  create [--backend B] [--name N] [--ttl DUR] [--idle DUR] [--on-expire A]\n"
		"         [--from-snapshot S] [policy options]   prints the id; ttl, idle: agentd\n"
		"                        sandbox timeout --help; --from-snapshot: its workdir and\n"
		"                        /tmp start as snapshot S (id or name)\n"
		"  exec [--stream] [--stdin] [--raw] [--timeout DUR] [--env K=V] [--workdir D] ID -- PROG ARGS...\n"
		"  exec -it [--env K=V] [--workdir D] ID -- PROG ARGS...   on a terminal, interactive\n"
		"  attach ID PID         a terminal on a process started with a tty; Ctrl-P Ctrl-Q\n"
		"                        detaches and leaves it running\n"
		"  ls [--label K=V]... [--state S] [--backend B] [--name N]   the live ones that\n"
		"                        match every filter given\n"
		"  inspect ID | usage ID | suspend ID | resume ID | rm ID...\n"
		"  network ID --none | --allow HOST:PORT...   switch a live container sandbox's\n"
		"                        network (open connections the new policy does not allow\n"
		"                        are closed)\n"
		"  (ID: a sandbox's id or its name)\n"
		"  snapshot ID [NAME]    prints the snapshot id (it outlives the sandbox)\n"
		"  snapshot ls [ID] | snapshot rm SNAPSHOT...   list, delete (id or name)\n"
		"  restore ID SNAPSHOT\n"
		"  timeout ID [--ttl DUR] [--idle DUR] [--on-expire destroy|suspend]\n"
		"  context ID --language L | contexts ID | context-rm ID CID | run-code ID CID\n"
		"                        code contexts (agentd sandbox context --help)\n"
		"  cp [--raw] SRC DST    as docker cp: one side is ID:PATH (relative to the workdir,\n"
		"                        or absolute where the sandbox writes), the other a host\n"
		"                        path; directories copy recursively, into a directory DST\n"
		"                        under their own name; - is a tar stream on stdin/stdout (a\n"
		"                        file's bytes to stdout, escaped on a terminal unless --raw)\n"
		"  spawn|ps|logs|kill|stdin ...   background processes: agentd sandbox spawn --help\n"
		"  port [--unix] ID PORT   forward the sandbox's PORT to the host: prints the address\n"
		"  port --close ID PORT | ports ID\n\n%s",
		policy_flags_help());
}

/* Parse the options of every subcommand (policy options only where create allows them). */
static int parse_opts(int argc, char **argv, bool policy, bool in_order, struct sbx_opts *o)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"json", no_argument, NULL, OPT_JSON},
		{"name", required_argument, NULL, OPT_NAME},
		{"backend", required_argument, NULL, OPT_BACKEND},
		{"stream", no_argument, NULL, OPT_STREAM},
		{"stdin", no_argument, NULL, OPT_STDIN},
		{"raw", no_argument, NULL, OPT_RAW},
		{"label", required_argument, NULL, OPT_LABEL},
		{"state", required_argument, NULL, OPT_STATE},
		{"from-snapshot", required_argument, NULL, OPT_FROM_SNAPSHOT},
		{"help", no_argument, NULL, 'h'},
		POLICY_LONG_OPTIONS,
		EXPIRY_LONG_OPTIONS, /* issue 12: ttl */
		{NULL, 0, NULL, 0},
	};
	agentd_error err = {0};
	int c;
	optind = 1;
	opterr = 0;
	/* exec stops at its ID (the command's own options follow); the others take options
	 * anywhere. */
	while ((c = getopt_long(argc, argv, in_order ? "+:hit" : ":hit", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			o->socket = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_NAME:
			o->name = optarg;
			break;
		case OPT_BACKEND:
			o->backend = optarg;
			break;
		case OPT_STREAM:
			o->stream = true;
			break;
		case OPT_RAW:
			o->raw = true;
			break;
		case OPT_LABEL:
			strv_push(&o->labels, optarg);
			break;
		case OPT_STATE:
			o->state = optarg;
			break;
		case OPT_FROM_SNAPSHOT:
			o->from_snapshot = optarg;
			break;
		case 't':
			o->tty = true;
			break;
		case 'i':
		case OPT_STDIN:
			o->want_stdin = true;
			break;
		case OPT_TTL: /* issue 12: ttl */
		case OPT_IDLE:
		case OPT_ON_EXPIRE:
			if (!policy) {
				print_error("sandbox %s: --%s is for `sandbox create` and `sandbox "
					    "timeout`", argv[0], c == OPT_TTL ? "ttl" : c == OPT_IDLE
					    ? "idle" : "on-expire");
				return -1;
			}
			*(c == OPT_TTL ? &o->ttl : c == OPT_IDLE ? &o->idle : &o->on_expire) = optarg;
			break;
		case 'h':
			sandbox_usage(stdout);
			exit(0);
		case '?':
		case ':':
			return cli_bad_option("sandbox", c, argv);
		default:
			/* exec reuses --timeout, --env and --workdir for the one command */
			if (!policy && c == OPT_TIMEOUT) {
				o->timeout = optarg;
			} else if (!policy && c == OPT_WORKDIR) {
				o->workdir = optarg;
			} else if (!policy && c == OPT_ENV) {
				const char *eq = strchr(optarg, '=');
				if (!eq || eq == optarg) {
					print_error("--env: expected K=V, got '%s'", optarg);
					return -1;
				}
				o->env.v = realloc(o->env.v, (o->env.n + 1) * sizeof(agentd_kv));
				o->env.v[o->env.n].key = strndup(optarg, (size_t)(eq - optarg));
				o->env.v[o->env.n].value = strdup(eq + 1);
				o->env.n++;
			} else if (!policy) {
				print_error("sandbox %s: policy options are only for `sandbox create` "
					    "(see agentd sandbox --help)",
					    argv[0]);
				return -1;
			} else if (policy_flags_add(&o->pf, c, optarg, &err) < 0) {
				print_error("%s", err.msg[0] ? err.msg : "bad option");
				return -1;
			} else {
				o->policy_used = true;
			}
		}
	}
	return optind;
}

static int print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | term_json_flags());
	puts(s);
	free(s);
	return 0;
}

/* Policy flags → spec → the JSON the API takes (the daemon parses it strictly again). */
json_t *policy_flags_json(const struct policy_flags *pf, agentd_error *err)
{
	agentd_spec spec;
	if (policy_flags_build(pf, &spec, err) < 0)
		return NULL;
	char *s = agentd_policy_to_json(&spec);
	agentd_spec_free(&spec);
	json_t *j = json_loads(s, 0, NULL);
	free(s);
	return j;
}

static int do_create(struct sbx_opts *o, int argc, char **argv, int i)
{
	if (i != argc) {
		print_error("sandbox create: unexpected argument '%s'", argv[i]);
		return EXIT_AGENTD;
	}
	agentd_error err = {0};
	json_t *spec = policy_flags_json(&o->pf, &err);
	if (!spec) {
		print_error("%s", err.msg);
		return EXIT_AGENTD;
	}
	json_t *body = json_pack("{s:o}", "spec", spec);
	if (o->backend)
		json_object_set_new(body, "backend", json_string(o->backend));
	if (o->name)
		json_object_set_new(body, "name", json_string(o->name));
	if (o->pf.allow_degraded)
		json_object_set_new(body, "allow_degraded", json_true());
	if (expiry_flags_add(body, o->ttl, o->idle, o->on_expire) < 0) { /* issue 12: ttl */
		json_decref(body);
		return EXIT_AGENTD;
	}
	if (o->from_snapshot)
		json_object_set_new(body, "from_snapshot", json_string(o->from_snapshot));
	int status = 0;
	json_t *j = client_call(o->socket, "POST", "/v1/sandboxes", body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("sandbox create: %s", err.msg);
		return EXIT_AGENTD;
	}
	int rc = status == 201 ? 0 : client_report_error("sandbox create", status, j);
	if (!rc)
		warn_unenforced_json(j);
	if (!rc)
		o->json ? print_json(j) : puts(json_string_value(json_object_get(j, "id")));
	json_decref(j);
	return rc;
}

void warn_unenforced_json(json_t *answer)
{
	json_t *v;
	size_t i;
	json_array_foreach(json_object_get(answer, "unenforced"), i, v)
		print_error("warning: not enforced (--allow-degraded): %s", json_string_value(v));
}

void write_decoded(struct term_out *t, json_t *data, const char *encoding)
{
	const char *s = json_string_value(data);
	if (!s)
		return;
	size_t n = json_string_length(data);
	uint8_t *buf = NULL;
	if (encoding && !strcmp(encoding, "base64")) {
		if (base64_decode(s, n, &buf, &n) < 0) {
			print_error("the daemon sent bad base64");
			return;
		}
		s = (const char *)buf;
	}
	term_out_write(t, (const uint8_t *)s, n);
	free(buf);
}

void write_exec_output(json_t *res, bool raw)
{
	struct term_out t[2];
	term_out_init(&t[0], 1, raw);
	term_out_init(&t[1], 2, raw);
	write_decoded(&t[0], json_object_get(res, "stdout"),
		      json_string_value(json_object_get(res, "stdout_encoding")));
	write_decoded(&t[1], json_object_get(res, "stderr"),
		      json_string_value(json_object_get(res, "stderr_encoding")));
	term_out_flush(&t[0]);
	term_out_flush(&t[1]);
}

struct stream_state {
	int exit_code;
	bool json;
	struct term_out term[2];	/* stdout, stderr */
};

json_t *ndjson_line(const char *line, size_t len, bool echo)
{
	json_t *j = json_loadb(line, len, 0, NULL);
	if (j && echo) {
		char *s = json_dumps(j, JSON_COMPACT | term_json_flags());
		puts(s);
		fflush(stdout);
		free(s);
	}
	return j;
}

static void on_line(void *ud, const char *line, size_t len)
{
	struct stream_state *st = ud;
	json_t *j = ndjson_line(line, len, st->json);
	if (!j)
		return;
	json_t *ex = json_object_get(j, "exit");
	json_t *er = json_object_get(j, "error");
	if (ex) {
		st->exit_code = (int)json_integer_value(json_object_get(ex, "exit_code"));
	} else if (er) {
		print_error("sandbox exec: %s", json_string_value(json_object_get(er, "message")));
		st->exit_code = EXIT_AGENTD;
	} else if (!st->json) {
		const char *name = json_string_value(json_object_get(j, "stream"));
		write_decoded(&st->term[name && !strcmp(name, "stderr") ? 1 : 0],
			      json_object_get(j, "data"),
			      json_string_value(json_object_get(j, "encoding")));
	}
	json_decref(j);
}

static int do_exec(struct sbx_opts *o, int argc, char **argv, int i)
{
	/* getopt stops at "--" too: then what follows it is the command, not the ID */
	if (i >= argc || !argv[i][0] || !strcmp(argv[i - 1], "--")) {
		print_error("sandbox exec: the sandbox ID is missing: agentd sandbox exec [options] "
			    "ID -- PROG ARGS... (see agentd sandbox --help)");
		return EXIT_AGENTD;
	}
	const char *id = argv[i++];
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) {
		print_error("sandbox exec: no command given after the ID %s: agentd sandbox exec "
			    "[options] ID -- PROG ARGS...",
			    id);
		return EXIT_AGENTD;
	}
	if (o->tty) {
		if (o->timeout || o->stream) {
			print_error("sandbox exec -t: --timeout and --stream are not for a terminal "
				    "session");
			return EXIT_AGENTD;
		}
		return cmd_exec_tty(o->socket, id, argv + i, &o->env, o->workdir);
	}
	agentd_error err = {0};
	json_t *av = json_array();
	for (; i < argc; i++)
		json_array_append_new(av, json_string(argv[i]));
	json_t *body = json_pack("{s:o}", "argv", av);
	if (o->env.n) {
		json_t *env = json_object();
		for (size_t k = 0; k < o->env.n; k++)
			json_object_set_new(env, o->env.v[k].key, json_string(o->env.v[k].value));
		json_object_set_new(body, "env", env);
	}
	if (o->workdir)
		json_object_set_new(body, "workdir", json_string(o->workdir));
	if (o->timeout) {
		uint64_t ms;
		if (parse_duration_ms(o->timeout, &ms, &err) < 0) {
			print_error("--timeout: %s", err.msg);
			return EXIT_AGENTD;
		}
		json_object_set_new(body, "timeout_ms", json_integer((json_int_t)ms));
	}
	if (o->want_stdin) {
		size_t n;
		uint8_t *in = read_fd_all(0, &n);
		char *enc = base64_encode(in, n);
		json_object_set_new(body, "stdin", json_string(enc));
		free(enc);
		free(in);
	}
	if (o->stream)
		json_object_set_new(body, "stream", json_true());
	char path[128];
	snprintf(path, sizeof(path), "/v1/sandboxes/%.64s/exec", id);
	struct stream_state st = {.exit_code = EXIT_AGENTD, .json = o->json};
	term_out_init(&st.term[0], 1, o->raw);
	term_out_init(&st.term[1], 2, o->raw);
	struct http_response resp;
	int r = client_send(o->socket, "POST", path, body, &resp, o->stream ? on_line : NULL, &st,
			    &err);
	json_decref(body);
	if (r < 0) {
		print_error("sandbox exec: %s", err.msg);
		return EXIT_AGENTD;
	}
	json_t *j = resp.status != 200 || !o->stream ? json_loadb(resp.body ? resp.body : "",
								 resp.len, 0, NULL)
						     : NULL;
	int rc;
	if (resp.status != 200) {
		rc = client_report_error("sandbox exec", resp.status, j);
	} else if (o->stream) {
		rc = st.exit_code;
	} else if (o->json) {
		print_json(j);
		rc = (int)json_integer_value(json_object_get(j, "exit_code"));
	} else {
		write_exec_output(j, o->raw);
		if (json_is_true(json_object_get(j, "timed_out")))
			print_error("timed out; the command and everything it started were killed");
		rc = (int)json_integer_value(json_object_get(j, "exit_code"));
	}
	term_out_flush(&st.term[0]);
	term_out_flush(&st.term[1]);
	json_decref(j);
	http_response_free(&resp);
	return rc;
}

/* GET /v1/sandboxes with ls's filters as its query (malloc'd). */
static char *ls_path(const struct sbx_opts *o)
{
	const char *keys[] = {"state", "backend", "name"};
	const char *vals[] = {o->state, o->backend, o->name};
	size_t n = strlen("/v1/sandboxes") + 1;
	char *path = strdup("/v1/sandboxes");
	char sep = '?';
	for (size_t i = 0; i < o->labels.n + 3; i++) {
		const char *k = i < o->labels.n ? "label" : keys[i - o->labels.n];
		const char *v = i < o->labels.n ? o->labels.v[i] : vals[i - o->labels.n];
		if (!v)
			continue;
		char *q = url_escape(v);
		n += strlen(k) + strlen(q) + 2;
		path = realloc(path, n);
		size_t len = strlen(path);
		snprintf(path + len, n - len, "%c%s=%s", sep, k, q);
		sep = '&';
		free(q);
	}
	return path;
}

static int do_ls(struct sbx_opts *o)
{
	agentd_error err = {0};
	int status = 0;
	char *path = ls_path(o);
	json_t *j = client_call(o->socket, "GET", path, NULL, &status, &err);
	free(path);
	strv_free(&o->labels);
	if (!j) {
		print_error("sandbox ls: %s", err.msg);
		return EXIT_AGENTD;
	}
	if (status != 200)
		return client_report_error("sandbox ls", status, j);
	if (o->json) {
		print_json(json_object_get(j, "sandboxes"));
	} else {
		printf("%-32s  %-16s  %-12s  %-12s\n", "ID", "NAME", "BACKEND", "STATE");
		size_t i;
		json_t *s;
		json_array_foreach(json_object_get(j, "sandboxes"), i, s) {
			const char *name = json_string_value(json_object_get(s, "name"));
			printf("%-32s  %-16s  %-12s  %-12s\n",
			       json_string_value(json_object_get(s, "id")), name ? name : "-",
			       json_string_value(json_object_get(s, "backend")),
			       json_string_value(json_object_get(s, "state")));
		}
	}
	json_decref(j);
	return 0;
}

/* inspect, usage, suspend, resume, rm, snapshot, restore: one call each. */
static int simple(struct sbx_opts *o, const char *verb, const char *method, const char *path,
		  json_t *body, int ok, const char *print_key)
{
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(o->socket, method, path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("sandbox %s: %s", verb, err.msg);
		return EXIT_AGENTD;
	}
	int rc = status == ok ? 0 : client_report_error(verb, status, j);
	if (!rc) {
		if (o->json || !print_key) {
			print_json(j);
		} else if (*print_key) {
			puts(json_string_value(json_object_get(j, print_key)));
		}
	}
	json_decref(j);
	return rc;
}

int sandbox_call(const char *socket, bool json, const char *verb, const char *method,
		 const char *path, json_t *body, int ok, const char *print_key)
{
	struct sbx_opts o = {.socket = socket, .json = json};
	return simple(&o, verb, method, path, body, ok, print_key);
}

int cmd_sandbox(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		sandbox_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_AGENTD : 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "context") || !strcmp(sub, "contexts") || !strcmp(sub, "context-rm") ||
	    !strcmp(sub, "run-code"))
		return cmd_context(sub, argc - 1, argv + 1);
	if (!strcmp(sub, "port") || !strcmp(sub, "ports"))
		return cmd_sandbox_port(argc - 1, argv + 1);
	/* issue 12: names */
	if (!strcmp(sub, "network"))
		return cmd_sandbox_network(argc - 1, argv + 1);
	if (!strcmp(sub, "timeout")) /* issue 12: ttl */
		return cmd_sandbox_timeout(argc - 1, argv + 1);
	if (!strcmp(sub, "snapshot") && argc > 2 && (!strcmp(argv[2], "ls") || !strcmp(argv[2], "rm")))
		return cmd_snapshot(argc - 1, argv + 1);
	static const char *const subs[] = {"create", "exec",	 "ls",	    "list",    "inspect",
					   "usage",  "suspend", "resume",  "rm",      "snapshot",
					   "restore", "cp", "spawn", "ps", "logs", "kill", "stdin", "attach"};
	size_t s = 0;
	while (s < ARRAY_SIZE(subs) && strcmp(sub, subs[s]))
		s++;
	if (s == ARRAY_SIZE(subs)) {
		print_error("sandbox: unknown command '%s' (see agentd sandbox --help)", sub);
		return EXIT_AGENTD;
	}
	if (s >= ARRAY_SIZE(subs) - 6 && s < ARRAY_SIZE(subs) - 1)
		return cmd_process(sub, argc - 1, argv + 1);
	struct sbx_opts o;
	memset(&o, 0, sizeof(o));
	int i = parse_opts(argc - 1, argv + 1, !strcmp(sub, "create"), !strcmp(sub, "exec"), &o);
	if (i < 0)
		return EXIT_AGENTD;
	argc--;
	argv++;
	o.socket = socket_path_default(o.socket);
	if (!strcmp(sub, "create"))
		return do_create(&o, argc, argv, i);
	if (!strcmp(sub, "exec"))
		return do_exec(&o, argc, argv, i);
	if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
		return do_ls(&o);
	if (!strcmp(sub, "attach"))
		return cmd_attach(o.socket, argc, argv, i);
	if (!strcmp(sub, "cp")) {
		if (argc - i != 2) {
			print_error("sandbox cp: expected SRC DST (see agentd sandbox --help)");
			return EXIT_AGENTD;
		}
		return sandbox_cp(o.socket, o.raw, argv[i], argv[i + 1]);
	}
	if (i >= argc) {
		print_error("sandbox %s: the sandbox ID is missing (see agentd sandbox --help)", sub);
		return EXIT_AGENTD;
	}
	char path[160];
	const char *id = argv[i];
	if (strlen(id) > 64) {
		print_error("sandbox %s: bad id", sub);
		return EXIT_AGENTD;
	}
	if (!strcmp(sub, "rm")) {
		int rc = 0;
		for (; i < argc; i++) {
			snprintf(path, sizeof(path), "/v1/sandboxes/%.64s", argv[i]);
			int r = simple(&o, "rm", "DELETE", path, NULL, 200, "id");
			if (r)
				rc = r;
		}
		return rc;
	}
	static const struct {
		const char *sub, *method, *suffix, *print;
		int ok, nargs;
	} table[] = {
		{"inspect", "GET", "", NULL, 200, 0},
		{"usage", "GET", "/usage", NULL, 200, 0},
		{"suspend", "POST", "/suspend", "state", 200, 0},
		{"resume", "POST", "/resume", "state", 200, 0},
		{"snapshot", "POST", "/snapshots", "snapshot_id", 201, 1},
		{"restore", "POST", "/restore", "", 200, 1},
	};
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
		if (strcmp(sub, table[k].sub))
			continue;
		/* snapshot ID [NAME]: the name is optional */
		if (argc - i != 1 + table[k].nargs && !(k == 4 && argc - i == 1)) {
			print_error("sandbox %s: expected ID%s (see agentd sandbox --help)", sub,
				    table[k].nargs ? (k == 4 ? " NAME" : " SNAPSHOT") : "");
			return EXIT_AGENTD;
		}
		snprintf(path, sizeof(path), "/v1/sandboxes/%.64s%s", id, table[k].suffix);
		json_t *body = NULL;
		if (k == 4)
			body = argc - i > 1 ? json_pack("{s:s}", "name", argv[i + 1]) : json_object();
		else if (k == 5)
			body = json_pack("{s:s}", "snapshot_id", argv[i + 1]);
		return simple(&o, sub, table[k].method, path, body, table[k].ok, table[k].print);
	}
	return EXIT_AGENTD; /* not reached: sub is one of subs */
}
