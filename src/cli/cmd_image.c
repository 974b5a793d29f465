/* cmd_image.c: `agentd image import|ls|inspect|rm|prune|tag|export` — the image store
 * (docs/images.md) through the daemon when one answers on its socket, else directly on the
 * local store (--state-dir DIR: DIR/images). Both give the same JSON answers. */
#include "cli/cli.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { OPT_SOCKET = 0x200, OPT_JSON, OPT_STATE_DIR, OPT_TAG };

static void image_usage(FILE *f)
{
	fprintf(f, "usage: agentd image import FILE [--tag NAME[:TAG]]\n"
		   "       agentd image ls [--json]\n"
		   "       agentd image inspect REF\n"
		   "       agentd image rm [-f] REF\n"
		   "       agentd image prune\n"
		   "       agentd image tag REF NAME[:TAG]\n"
		   "       agentd image export REF [-o FILE]\n"
		   "       agentd image build --from debian:SUITE|IMAGE --tag NAME ... (--help)\n"
		   "  FILE: a docker/podman save tar, an OCI image layout (directory or tar) or a\n"
		   "  root filesystem tar (gzip, zstd, xz too). REF: name[:tag], sha256:ID or 12+\n"
		   "  hex digits of the id. Through the daemon when one answers, else on the store.\n"
		   "  --socket PATH     the daemon's socket\n"
		   "  --state-dir DIR   no daemon: the store DIR/images (default %s)\n"
		   "  --json            the answer as JSON\n",
		agentd_default_image_dir());
}

struct image_opts {
	const char *socket;		/* NULL: the local store */
	const char *state_dir;
	const char *tag, *output;
	bool json, force;
	agentd_image_store *store;
};

/* ------------------------------------------------------------------ the two ways */

static void progress_line(void *ud, const char *line)
{
	(void)ud;
	fprintf(stderr, "agentd: image import: %s\n", line);
}

static json_t *info_json(const agentd_image_info *i)
{
	char *s = agentd_image_info_json(i);
	json_t *j = json_loads(s, 0, NULL);
	free(s);
	return j;
}

static json_t *error_json(const agentd_error *err, int *status)
{
	*status = err->code == ENOENT ? 404 : err->code == EBUSY ? 409 : 400;
	return json_pack("{s:{s:s}}", "error", "message", err->msg);
}

static int open_store(struct image_opts *o, agentd_error *err)
{
	if (o->store)
		return 0;
	char dir[4096];
	if (o->state_dir)
		snprintf(dir, sizeof(dir), "%s/images", o->state_dir);
	else
		snprintf(dir, sizeof(dir), "%s", agentd_default_image_dir());
	return agentd_image_store_open(dir, &o->store, err);
}

/* The local store's answer to verb (the daemon's JSON shape). */
static json_t *local_call(struct image_opts *o, const char *verb, const char *a, const char *b,
			  int *status)
{
	agentd_error err = {0};
	agentd_image_info info = {0};
	json_t *j = NULL;
	*status = 200;
	if (open_store(o, &err) < 0)
		return error_json(&err, status);
	if (!strcmp(verb, "import")) {
		agentd_image_import_opts io = {.tag = o->tag,
					       .progress = isatty(2) ? progress_line : NULL};
		if (agentd_image_import(o->store, a, &io, &info, &err) == 0)
			j = info_json(&info);
		*status = 201;
	} else if (!strcmp(verb, "inspect")) {
		if (agentd_image_inspect(o->store, a, &info, &err) == 0)
			j = info_json(&info);
	} else if (!strcmp(verb, "ls")) {
		agentd_image_info *v;
		size_t n;
		if (agentd_image_list(o->store, &v, &n, &err) == 0) {
			json_t *arr = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(arr, info_json(&v[i]));
			agentd_image_list_free(v, n);
			j = json_pack("{s:o}", "images", arr);
		}
	} else if (!strcmp(verb, "tag")) {
		if (agentd_image_tag(o->store, a, b, &err) == 0 &&
		    agentd_image_inspect(o->store, b, &info, &err) == 0)
			j = info_json(&info);
	} else if (!strcmp(verb, "rm")) {
		if (agentd_image_remove(o->store, a, o->force, &err) == 0)
			j = json_pack("{s:s}", "removed", a);
	} else if (!strcmp(verb, "prune")) {
		uint64_t freed = 0;
		if (agentd_image_prune(o->store, &freed, &err) == 0)
			j = json_pack("{s:I}", "freed_bytes", (json_int_t)freed);
	}
	agentd_image_info_free(&info);
	return j ? j : error_json(&err, status);
}

/* The daemon's answer to verb. */
static json_t *daemon_call(struct image_opts *o, const char *verb, const char *a, const char *b,
			   int *status)
{
	agentd_error err = {0};
	_cleanup_free_ char *ref = a ? url_escape(a) : NULL;
	_cleanup_free_ char *path = NULL;
	const char *method = "GET";
	json_t *body = NULL;
	if (!strcmp(verb, "import")) {
		char abs[4096];
		if (!realpath(a, abs)) {
			agentd_error_errno(&err, errno, "%s", a);
			return error_json(&err, status);
		}
		method = "POST";
		path = xstrdup("/v1/images/import");
		body = json_pack("{s:s}", "path", abs);
		if (o->tag)
			json_object_set_new(body, "tag", json_string(o->tag));
		if (isatty(2))
			fprintf(stderr, "agentd: image import: %s (through the daemon)\n", abs);
	} else if (!strcmp(verb, "ls")) {
		path = xstrdup("/v1/images");
	} else if (!strcmp(verb, "inspect")) {
		path = xasprintf("/v1/images/%s", ref);
	} else if (!strcmp(verb, "tag")) {
		method = "POST";
		path = xasprintf("/v1/images/%s/tag", ref);
		body = json_pack("{s:s}", "tag", b);
	} else if (!strcmp(verb, "rm")) {
		method = "DELETE";
		path = xasprintf("/v1/images/%s%s", ref, o->force ? "?force=true" : "");
	} else {
		method = "POST";
		path = xstrdup("/v1/images/prune");
	}
	json_t *j = client_call(o->socket, method, path, body, status, &err);
	json_decref(body);
	if (!j && !err.code)
		j = json_object(); /* 204 */
	return j ? j : error_json(&err, status);
}

/* ------------------------------------------------------------------ printing */

static void print_size(uint64_t b, char *buf, size_t n)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%.1f GiB", (double)b / (1ull << 30));
	else if (b >= (1u << 20))
		snprintf(buf, n, "%.1f MiB", (double)b / (1u << 20));
	else
		snprintf(buf, n, "%.1f KiB", (double)b / 1024);
}

static void print_row(json_t *img)
{
	const char *id = json_string_value(json_object_get(img, "id"));
	char size[32], when[32], tags[512] = "";
	print_size((uint64_t)json_integer_value(json_object_get(img, "size_bytes")), size,
		   sizeof(size));
	time_t t = (time_t)json_integer_value(json_object_get(img, "created"));
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime(&t));
	size_t i;
	json_t *tag;
	json_array_foreach(json_object_get(img, "tags"), i, tag) {
		size_t l = strlen(tags);
		snprintf(tags + l, sizeof(tags) - l, "%s%s", l ? "," : "", json_string_value(tag));
	}
	printf("%-12.12s  %-40s  %10s  %s%s\n", id && strlen(id) > 7 ? id + 7 : "?",
	       *tags ? tags : "<none>", size, when,
	       json_is_true(json_object_get(img, "in_use")) ? "  (in use)" : "");
}

static int print_answer(const char *verb, json_t *j, bool as_json)
{
	if (as_json || !strcmp(verb, "inspect")) {
		char *out = json_dumps(j, JSON_INDENT(2) | term_json_flags());
		puts(out);
		free(out);
		return 0;
	}
	if (!strcmp(verb, "ls")) {
		printf("%-12s  %-40s  %10s  %s\n", "ID", "TAGS", "SIZE", "CREATED");
		size_t i;
		json_t *img;
		json_array_foreach(json_object_get(j, "images"), i, img)
			print_row(img);
	} else if (!strcmp(verb, "prune")) {
		char size[32];
		print_size((uint64_t)json_integer_value(json_object_get(j, "freed_bytes")), size,
			   sizeof(size));
		printf("freed %s\n", size);
	} else if (json_object_get(j, "id")) {
		printf("%s\n", json_string_value(json_object_get(j, "id")));
	}
	return 0;
}

/* ------------------------------------------------------------------ export (local) */

static int export_image(struct image_opts *o, const char *ref)
{
	agentd_error err = {0};
	if (!o->output && isatty(1)) {
		print_error("image export: stdout is a terminal: give -o FILE or redirect it");
		return EXIT_AGENTD;
	}
	if (open_store(o, &err) < 0) {
		print_error("image export: %s", err.msg);
		return EXIT_AGENTD;
	}
	int fd = o->output ? open(o->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : 1;
	if (fd < 0) {
		print_error("image export: %s: %s", o->output, strerror(errno));
		return EXIT_AGENTD;
	}
	int r = agentd_image_export(o->store, ref, fd, &err);
	if (fd != 1)
		close(fd);
	if (r < 0) {
		if (o->output)
			unlink(o->output);
		print_error("image export: %s", err.msg);
		return EXIT_AGENTD;
	}
	return 0;
}

/* ------------------------------------------------------------------ the verb */

static int want_args(const char *verb, int have, int want)
{
	if (have == want)
		return 0;
	print_error("image %s: expected %d argument%s (try: agentd image --help)", verb, want,
		    want == 1 ? "" : "s");
	return -1;
}

/* A daemon answers on the socket (explicit or default); else the local store is used. */
static void pick_way(struct image_opts *o)
{
	if (o->state_dir)
		return;
	bool explicit = o->socket || getenv("AGENTD_SOCKET");
	const char *sock = socket_path_default(o->socket);
	struct client_conn c;
	agentd_error err = {0};
	if (client_connect(sock, &c, &err) == 0) {
		client_close(&c);
		o->socket = sock;
	} else if (explicit) {
		o->socket = sock; /* the call reports why it cannot connect */
	}
}

int cmd_image(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"json", no_argument, NULL, OPT_JSON},
		{"tag", required_argument, NULL, OPT_TAG},
		{"force", no_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct image_opts o = {0};
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		image_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_AGENTD : 0;
	}
	const char *verb = argv[1];
	if (!strcmp(verb, "build")) /* issue 13: img-build (cmd_image_build.c) */
		return cmd_image_build(argc - 1, argv + 1);
	static const char *const verbs[] = {"import", "ls", "inspect", "rm", "prune", "tag",
					    "export"};
	static const int nargs[] = {1, 0, 1, 1, 0, 2, 1};
	int v = -1;
	for (int i = 0; i < 7; i++)
		if (!strcmp(verb, verbs[i]))
			v = i;
	if (v < 0) {
		print_error("image: unknown command '%s' (try: agentd image --help)", verb);
		return EXIT_AGENTD;
	}
	optind = 2;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":fho:", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET: o.socket = optarg; break;
		case OPT_STATE_DIR: o.state_dir = optarg; break;
		case OPT_JSON: o.json = true; break;
		case OPT_TAG: o.tag = optarg; break;
		case 'f': o.force = true; break;
		case 'o': o.output = optarg; break;
		case 'h': image_usage(stdout); return 0;
		default: return cli_bad_option("image", c, argv);
		}
	}
	if (want_args(verb, argc - optind, nargs[v]) < 0)
		return EXIT_AGENTD;
	const char *a = optind < argc ? argv[optind] : NULL;
	const char *b = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (!strcmp(verb, "export")) {
		int rc = export_image(&o, a);
		agentd_image_store_free(o.store);
		return rc;
	}
	pick_way(&o);
	int status = 0;
	json_t *j = o.socket ? daemon_call(&o, verb, a, b, &status)
			     : local_call(&o, verb, a, b, &status);
	int rc = 0;
	if (status >= 200 && status < 300) {
		rc = print_answer(verb, j, o.json);
	} else if (o.socket) {
		char what[32];
		snprintf(what, sizeof(what), "image %s", verb);
		rc = client_report_error(what, status, j);
	} else {
		print_error("image %s: %s", verb,
			    json_string_value(json_object_get(json_object_get(j, "error"),
							      "message")));
		rc = EXIT_AGENTD;
	}
	json_decref(j);
	agentd_image_store_free(o.store);
	return rc;
}
