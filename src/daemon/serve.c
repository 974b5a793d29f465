/* serve.c: `agentd serve` — flags onto the daemon's configuration; the daemon itself
 * is src/daemon/. */
#include "daemon/daemon.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: agentd serve [--socket PATH] [--socket-group G] [--state-dir DIR] [--backend NAME]\n"
		   "                    [--max-sandboxes N] [--max-file-size SIZE] [--sync full]\n"
		   "                    [--drain DUR] [--listen 127.0.0.1:PORT --token-file F]\n"
		   "                    [--state-max-bytes SIZE] [--header-timeout DUR]\n"
		   "                    [--max-connections N] [--max-peer-connections N]\n"
		   "                    [--destroy-on-exit] [--max-snapshot-bytes SIZE]\n"
		   "                    [--default-ttl DUR] [--max-ttl DUR] [--default-idle DUR]\n"
		   "                    [--max-idle DUR]\n\n"
		   "  --socket PATH        unix socket (default: $AGENTD_SOCKET, else\n"
		   "                       /run/agentd/agentd.sock as root, $XDG_RUNTIME_DIR/agentd.sock)\n"
		   "  --socket-group G     group of the socket (mode 0660): who may use the API\n"
		   "  --state-dir DIR      SQLite state and sandbox dirs (default /var/lib/agentd as\n"
		   "                       root, else $XDG_RUNTIME_DIR/agentd)\n"
		   "  --backend NAME       default backend for sandboxes (default auto)\n"
		   "  --max-sandboxes N    concurrent sandboxes before 429 (default 64)\n"
		   "  --max-file-size SIZE files API limit (default 64M)\n"
		   "  --sync full          fsync every state commit (survives power loss)\n"
		   "  --state-max-bytes SIZE  budget of the state database (default 1G): past it\n"
		   "                       the oldest sealed audit segments are pruned, seals kept\n"
		   "  --drain DUR          on SIGTERM, wait this long for running requests (5s)\n"
		   "  --listen ADDR:PORT   also serve TCP; every request needs the bearer token\n"
		   "  --token-file F       the token (first line, at least 16 bytes)\n"
		   "  --header-timeout DUR a connection's first request head (with the token over\n"
		   "                       TCP) within this, else 408 and closed (default 5s)\n"
		   "  --max-connections N  per listener (default 1024); at most half wait for a\n"
		   "                       request head, the oldest shut first: room for clients\n"
		   "  --max-peer-connections N  per uid on the socket, per IP over TCP (128; half\n"
		   "                       of them may wait for a request head)\n"
		   "  --destroy-on-exit    destroy every sandbox when the daemon stops; by default\n"
		   "                       container sandboxes outlive it and the next daemon\n"
		   "                       adopts them (docs/api.md#restarts)\n"
		   "  --default-ttl DUR    a sandbox's lifetime when its create asks none\n"
		   "  --max-ttl DUR        the longest ttl_ms a client may ask (a longer one, or\n"
		   "                       none, is a 400); the default when --default-ttl is not\n"
		   "  --default-idle DUR   a sandbox's idle timeout when its create asks none\n"
		   "  --max-idle DUR       the longest idle_timeout_ms, as --max-ttl\n"
		   "  --max-snapshot-bytes SIZE  host disk of all snapshots together (default 8G):\n"
		   "                       past it a snapshot is refused (507)\n"
		   "  --image-max-entries N  entries of each layer an image import unpacks\n"
		   "                       (default 65536)\n"
		   "  --image-max-bytes SIZE  bytes of each layer's files (default 8G); an archive\n"
		   "                       body may be 4 times that\n");
}

static const char *default_state_dir(void)
{
	static char buf[512];
	if (geteuid() == 0)
		return "/var/lib/agentd";
	const char *x = getenv("XDG_RUNTIME_DIR");
	if (x && *x == '/')
		snprintf(buf, sizeof(buf), "%s/agentd", x);
	else
		snprintf(buf, sizeof(buf), "/tmp/agentd-%u", (unsigned)geteuid());
	return buf;
}

/* `agentd audit verify --state-dir DIR` (src/cli/cmd_audit.c): the chain of the state
 * database recomputed on a read-only connection (a daemon may be running on it); the
 * report as JSON text, or NULL with msg. */
char *agentd_audit_verify_dir(const char *state_dir, char *msg, size_t len);

__attribute__((visibility("default"))) char *agentd_audit_verify_dir(const char *state_dir,
								     char *msg, size_t len)
{
	agentd_error err = {0};
	_cleanup_free_ char *db = xasprintf("%s/agentd.db", state_dir);
	json_t *report = state_audit_verify(db, &err);
	if (!report) {
		snprintf(msg, len, "%s", err.msg);
		return NULL;
	}
	char *s = json_dumps(report, JSON_COMPACT);
	json_decref(report);
	return s;
}

/* Entry point of the serve module (cmd_serve_load.c loads it). */
int agentd_serve_main(int argc, char **argv);

/* "--FLAG N" with lo <= N <= hi: 0, or -1 after a message. */
static int opt_uint(const char *flag, const char *val, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	uint64_t v = strtoull(val, &end, 10);
	if (*end || !*val || v < lo || v > hi) {
		print_error("serve: --%s: expected %u..%u, got '%s'", flag, lo, hi, val);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* issue 12: ttl. --default-ttl, --max-ttl, --default-idle, --max-idle DUR (c is 0x100..). */
static int opt_timeout(const struct option *opts, int c, const char *val, struct server_cfg *cfg)
{
	uint64_t *const dst[] = {&cfg->default_ttl_ms, &cfg->max_ttl_ms, &cfg->default_idle_ms,
				 &cfg->max_idle_ms};
	const char *flag = "";
	for (const struct option *o = opts; o->name; o++)
		if (o->val == c)
			flag = o->name;
	agentd_error err = {0};
	uint64_t v;
	if (parse_duration_ms(val, &v, &err) < 0 || v == 0 || v > API_MAX_TIMEOUT_MS) {
		print_error("serve: --%s: %s", flag, err.msg[0] ? err.msg : "expected 1ms..10y");
		return -1;
	}
	*dst[c - 0x100] = v;
	return 0;
}

/* A default above its max would make every create that asks nothing a 400. */
static int check_timeouts(const struct server_cfg *cfg)
{
	if (cfg->max_ttl_ms && cfg->default_ttl_ms > cfg->max_ttl_ms) {
		print_error("serve: --default-ttl is above --max-ttl");
		return -1;
	}
	if (cfg->max_idle_ms && cfg->default_idle_ms > cfg->max_idle_ms) {
		print_error("serve: --default-idle is above --max-idle");
		return -1;
	}
	return 0;
}

/* The command line into *cfg (its defaults set): 0, 1 when --help was printed, -1 after a
 * message. */
static int parse_serve_args(int argc, char **argv, struct server_cfg *cfg)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"socket-group", required_argument, NULL, 'g'},
		{"state-dir", required_argument, NULL, 'd'},
		{"backend", required_argument, NULL, 'b'},
		{"max-sandboxes", required_argument, NULL, 'm'},
		{"max-file-size", required_argument, NULL, 'f'},
		{"sync", required_argument, NULL, 'y'},
		{"drain", required_argument, NULL, 'D'},
		{"listen", required_argument, NULL, 'l'},
		{"token-file", required_argument, NULL, 't'},
		{"state-max-bytes", required_argument, NULL, 'B'},
		{"header-timeout", required_argument, NULL, 'H'},
		{"max-connections", required_argument, NULL, 'C'},
		{"max-peer-connections", required_argument, NULL, 'P'},
		/* issue 12: snapshots */
		{"max-snapshot-bytes", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		/* issue 12: durable-daemon */
		{"destroy-on-exit", no_argument, NULL, 'X'},
		/* issue 12: ttl */
		{"default-ttl", required_argument, NULL, 0x100},
		{"max-ttl", required_argument, NULL, 0x101},
		{"default-idle", required_argument, NULL, 0x102},
		{"max-idle", required_argument, NULL, 0x103},
		/* issue 13: img-store */
		{"image-max-entries", required_argument, NULL, 0x130},
		{"image-max-bytes", required_argument, NULL, 0x131},
		{NULL, 0, NULL, 0},
	};
	agentd_error err = {0};
	uint64_t v;
	int c;
	optind = 1;
	opterr = 0; /* one line of ours instead of getopt's and the whole usage */
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			cfg->socket_path = optarg;
			break;
		case 'g':
			cfg->socket_group = optarg;
			break;
		case 'd':
			cfg->state_dir = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "auto") && !agentd_canonical_backend_name(optarg)) {
				print_error("serve: --backend: unknown backend '%s'", optarg);
				return -1;
			}
			cfg->default_backend = optarg;
			break;
		case 'm':
			if (opt_uint("max-sandboxes", optarg, 1, 100000, &cfg->max_sandboxes) < 0)
				return -1;
			break;
		case 'f':
			if (parse_size(optarg, &v, &err) < 0 || v == 0 || v > (1ull << 32)) {
				print_error("serve: --max-file-size: %s", err.msg[0] ? err.msg : "1..4G");
				return -1;
			}
			cfg->max_file_bytes = (size_t)v;
			break;
		case 'y':
			if (strcmp(optarg, "full") && strcmp(optarg, "normal")) {
				print_error("serve: --sync: expected full or normal");
				return -1;
			}
			cfg->sync_full = !strcmp(optarg, "full");
			break;
		case 'D':
			if (parse_duration_ms(optarg, &v, &err) < 0) {
				print_error("serve: --drain: %s", err.msg);
				return -1;
			}
			cfg->drain_ms = (unsigned)v;
			break;
		case 'l':
			cfg->listen = optarg;
			break;
		case 't':
			cfg->token_file = optarg;
			break;
		case 'B':
			if (parse_size(optarg, &v, &err) < 0 || v < (1u << 20)) {
				print_error("serve: --state-max-bytes: %s",
					    err.msg[0] ? err.msg : "at least 1M");
				return -1;
			}
			cfg->state_max_bytes = v;
			break;
		case 'H':
			if (parse_duration_ms(optarg, &v, &err) < 0 || v < 100 || v > 600000) {
				print_error("serve: --header-timeout: %s",
					    err.msg[0] ? err.msg : "expected 100ms..10m");
				return -1;
			}
			cfg->header_timeout_ms = (unsigned)v;
			break;
		case 'C':
			if (opt_uint("max-connections", optarg, 2, 65536, &cfg->max_connections) < 0)
				return -1;
			break;
		case 'P':
			if (opt_uint("max-peer-connections", optarg, 2, 65536,
				     &cfg->max_peer_connections) < 0)
				return -1;
			break;
		case 'S':
			if (parse_size(optarg, &v, &err) < 0) {
				print_error("serve: --max-snapshot-bytes: %s", err.msg);
				return -1;
			}
			cfg->max_snapshot_bytes = v;
			break;
		case 'X':
			cfg->destroy_on_exit = true;
			break;
		case 'h':
			serve_usage(stdout);
			return 1;
		case 0x100: /* issue 12: ttl */
		case 0x101:
		case 0x102:
		case 0x103:
			if (opt_timeout(opts, c, optarg, cfg) < 0)
				return -1;
			break;
		case 0x130: /* issue 13: img-store */
			if (parse_size(optarg, &v, &err) < 0 || v == 0 || v > (1ull << 32)) {
				print_error("serve: --image-max-entries: %s",
					    err.msg[0] ? err.msg : "expected 1..4G");
				return -1;
			}
			cfg->image_max_entries = v;
			break;
		case 0x131:
			if (parse_size(optarg, &v, &err) < 0 || v == 0) {
				print_error("serve: --image-max-bytes: %s",
					    err.msg[0] ? err.msg : "expected a size > 0");
				return -1;
			}
			cfg->image_max_bytes = v;
			break;
		default: {
			const char *arg = argv[optind - 1];
			print_error("serve: %s %.*s (see agentd serve --help)",
				    c == ':' ? "a value is missing after" : "unknown option",
				    (int)strcspn(arg, "="), arg);
			return -1;
		}
		}
	}
	if (optind < argc) {
		print_error("serve: unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return check_timeouts(cfg);
}

__attribute__((visibility("default"))) int agentd_serve_main(int argc, char **argv)
{
	struct server_cfg cfg = {
		.socket_path = socket_path_default(NULL),
		.state_dir = default_state_dir(),
		.default_backend = "auto",
		.max_sandboxes = 64,
		.max_file_bytes = 64u << 20,
		.drain_ms = 5000,
		.state_max_bytes = 1ull << 30,
		.header_timeout_ms = 5000,
		.max_connections = 1024,
		.max_peer_connections = 128,
		.max_snapshot_bytes = 8ull << 30,
	};
	int pr = parse_serve_args(argc, argv, &cfg);
	if (pr != 0)
		return pr > 0 ? 0 : EXIT_AGENTD;
	agentd_error err = {0};
	if (agentd_serve(&cfg, &err) < 0) {
		print_error("serve: %s", err.msg);
		return EXIT_AGENTD;
	}
	return 0;
}
