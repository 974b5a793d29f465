/* cmd_image_build.c: `agentd image build` — a template from Debian packages or an image,
 * built by the library here (agentd_image_build) into the local image store (docs/cli.md). */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_FROM = 0x200, OPT_PACKAGES, OPT_RUN, OPT_TAG, OPT_MIRROR, OPT_NO_CACHE,
       OPT_PROGRESS, OPT_BACKEND, OPT_JSON, OPT_STATE_DIR };

static void build_usage(FILE *f)
{
	fprintf(f,
		"usage: agentd image build --from debian:SUITE|IMAGE --tag NAME [--packages A,B,...]\n"
		"                          [--run CMD]... [--mirror URL] [--no-cache] [--progress]\n"
		"  --from debian:SUITE  a root filesystem bootstrapped from Debian (mmdebstrap, through\n"
		"                       the host's apt sources); IMAGE: that image extended\n"
		"  --packages A,B       Debian packages to install (repeatable)\n"
		"  --run CMD            a shell command run as root inside a sandbox of the image,\n"
		"                       after the packages (repeatable, in order)\n"
		"  --mirror URL         the Debian mirror (default: the host's apt sources')\n"
		"  --no-cache           build even when an image of the same inputs exists\n"
		"  --progress           a line per stage on stderr even when it is not a terminal\n"
		"  --backend NAME       the backend of the build's sandbox (default: container)\n"
		"  --json               the image as JSON (else its id)\n"
		"  --state-dir DIR      the store DIR/images (default: $AGENTD_IMAGE_DIR, else the\n"
		"                       default state dir's, docs/images.md)\n");
}

static void on_progress(void *ud, const char *line)
{
	(void)ud;
	fprintf(stderr, "%s\n", line);
}

/* "a,b c" -> each package */
static void split_packages(agentd_strv *out, const char *list)
{
	_cleanup_free_ char *copy = xstrdup(list);
	char *save = NULL;
	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
		strv_push(out, t);
}

static void print_result(const agentd_image_info *info, bool cached, bool as_json)
{
	if (!as_json) {
		printf("%s\n", info->id);
		return;
	}
	json_t *tags = json_array();
	for (size_t i = 0; i < info->tags.n; i++)
		json_array_append_new(tags, json_string(info->tags.v[i]));
	json_t *j = json_pack("{s:s, s:o, s:I, s:b}", "id", info->id, "tags", tags,
			      "size_bytes", (json_int_t)info->size_bytes, "cached", cached);
	char *txt = json_dumps(j, JSON_INDENT(2) | term_json_flags());
	puts(txt);
	free(txt);
	json_decref(j);
}

static int build(agentd_image_build_opts *o, const char *backend, const char *state_dir,
		 bool as_json)
{
	agentd_error err = {0};
	agentd_image_store *s = NULL;
	agentd_backend *b = NULL;
	agentd_image_info info = {0};
	bool cached = false;
	int rc = EXIT_AGENTD;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s%s", state_dir ? state_dir : agentd_default_image_dir(),
		 state_dir ? "/images" : "");
	if (agentd_image_store_open(dir, &s, &err) < 0 ||
	    agentd_create_backend(backend, NULL, &b, &err) < 0)
		goto out;
	agentd_backend_set_image_store(b, s); /* the build's sandboxes resolve images in s */
	if (agentd_image_build(s, b, o, &info, &cached, &err) == 0) {
		print_result(&info, cached, as_json);
		rc = 0;
	}
	agentd_image_info_free(&info);
out:
	if (rc)
		print_error("image build: %s", err.msg);
	if (b)
		agentd_backend_free(b);
	agentd_image_store_free(s);
	return rc;
}

/* argv[0] is "build". */
int cmd_image_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{"from", required_argument, NULL, OPT_FROM},
		{"packages", required_argument, NULL, OPT_PACKAGES},
		{"run", required_argument, NULL, OPT_RUN},
		{"tag", required_argument, NULL, OPT_TAG},
		{"mirror", required_argument, NULL, OPT_MIRROR},
		{"no-cache", no_argument, NULL, OPT_NO_CACHE},
		{"progress", no_argument, NULL, OPT_PROGRESS},
		{"backend", required_argument, NULL, OPT_BACKEND},
		{"json", no_argument, NULL, OPT_JSON},
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	agentd_image_build_opts o = {0};
	agentd_strv packages = {0}, run = {0};
	const char *backend = "container", *state_dir = NULL;
	bool progress = isatty(STDERR_FILENO), as_json = false;
	int c, rc;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_FROM: o.from = optarg; break;
		case OPT_PACKAGES: split_packages(&packages, optarg); break;
		case OPT_RUN: strv_push(&run, optarg); break;
		case OPT_TAG: o.tag = optarg; break;
		case OPT_MIRROR: o.mirror = optarg; break;
		case OPT_NO_CACHE: o.no_cache = true; break;
		case OPT_PROGRESS: progress = true; break;
		case OPT_BACKEND: backend = optarg; break;
		case OPT_JSON: as_json = true; break;
		case OPT_STATE_DIR: state_dir = optarg; break;
		case 'h': build_usage(stdout); rc = 0; goto out;
		default: rc = cli_bad_option("image build", c, argv); goto out;
		}
	}
	if (optind < argc) {
		print_error("image build: unexpected argument %s", argv[optind]);
		build_usage(stderr);
		rc = EXIT_AGENTD;
		goto out;
	}
	o.packages = packages;
	o.run = run;
	if (progress)
		o.progress = on_progress;
	rc = build(&o, backend, state_dir, as_json);
out:
	strv_free(&packages);
	strv_free(&run);
	return rc;
}
