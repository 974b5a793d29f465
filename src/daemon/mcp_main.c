/* mcp_main.c: `agentd mcp` — the MCP server's stdio transport (newline-delimited JSON-RPC
 * on stdin/stdout, logs on stderr), its flags, and --embedded: a daemon of its own (this
 * module's agentd_serve_main, in a child) on a private socket and state dir, gone at exit.
 * The Streamable HTTP transport is mcp_http.c. */
#include "daemon/daemon.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

int agentd_serve_main(int argc, char **argv);
int agentd_mcp_main(int argc, char **argv);

static void mcp_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: agentd mcp [--socket PATH | --embedded] [--listen 127.0.0.1:PORT --token-file "
	    "F]\n\n"
	    "A Model Context Protocol server (docs/mcp.md). Without --listen it speaks\n"
	    "newline-delimited JSON-RPC on stdin/stdout (an agent spawns it); with --listen,\n"
	    "Streamable HTTP at http://ADDR:PORT/mcp with the bearer token of F.\n\n"
	    "  --socket PATH   the daemon to drive (default: $AGENTD_SOCKET, else\n"
	    "                  /run/agentd/agentd.sock as root, $XDG_RUNTIME_DIR/agentd.sock)\n"
	    "  --embedded      run a daemon of our own on a private state dir (removed at exit)\n"
	    "  --backend NAME  the embedded daemon's default backend (default auto)\n");
}

/* ------------------------------------------------------------------ embedded daemon */

struct embedded {
	char dir[64];
	char *socket;
	pid_t pid;
};

/* The embedded daemon, in a grandchild: its logs never reach the protocol's stdout. */
static __attribute__((noreturn)) void run_daemon(const char *socket, const char *state,
						 const char *backend, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(EXIT_AGENTD);
	dup2(STDERR_FILENO, STDOUT_FILENO);
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nul >= 0)
		dup2(nul, STDIN_FILENO);
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	char *argv[] = {"serve", "--socket", (char *)socket, "--state-dir", (char *)state,
			"--destroy-on-exit", "--backend", (char *)(backend ?: "auto"), NULL};
	_exit(agentd_serve_main(8, argv));
}

/* The child of agentd mcp between it and the daemon: it passes a stop signal on (also
 * the one it gets when agentd mcp dies, -9 included), and once the daemon is gone (its
 * mounts with it) removes the private dir, so that nothing is left. */
static __attribute__((noreturn)) void supervise(const char *dir, const char *socket,
						const char *state, const char *backend,
						pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(rm_rf(dir) < 0);
	sigset_t set; /* the stop signals are blocked already (agentd_mcp_main) */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pid_t me = getpid(), daemon = fork();
	if (daemon == 0)
		run_daemon(socket, state, backend, me);
	int status = 0, sig;
	while (daemon > 0 && waitpid(daemon, &status, WNOHANG) == 0)
		if (sigwait(&set, &sig) == 0 && sig != SIGCHLD)
			kill(daemon, SIGTERM);
	rm_rf(dir);
	_exit(daemon > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_AGENTD);
}

static int embedded_start(struct embedded *e, const char *backend)
{
	snprintf(e->dir, sizeof(e->dir), "/tmp/agentd-mcp-XXXXXX");
	if (!mkdtemp(e->dir)) {
		print_error("mcp: --embedded: mkdtemp: %s", strerror(errno));
		return -1;
	}
	e->socket = xasprintf("%s/agentd.sock", e->dir);
	_cleanup_free_ char *state = xasprintf("%s/state", e->dir);
	pid_t parent = getpid();
	e->pid = fork();
	if (e->pid < 0) {
		print_error("mcp: --embedded: fork: %s", strerror(errno));
		return -1;
	}
	if (e->pid == 0)
		supervise(e->dir, e->socket, state, backend, parent);
	for (int i = 0; i < 600; i++) { /* up to 60 s on a loaded machine */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->socket);
		int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (r == 0)
			return 0;
		if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
			e->pid = 0;
			print_error(
			    "mcp: --embedded: the daemon exited at start (its log is above)");
			return -1;
		}
		usleep(100000);
	}
	print_error("mcp: --embedded: the daemon did not listen on %s within 60 s", e->socket);
	return -1;
}

static void embedded_stop(struct embedded *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		while (waitpid(e->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (e->dir[0] && strcmp(e->dir, "/tmp/agentd-mcp-XXXXXX"))
		rm_rf(e->dir);
	free(e->socket);
}

/* ------------------------------------------------------------------ stdio */

struct stdio_server {
	struct mcp_session session;
	struct mcp_tools tools;
	struct mcp_ops ops;
	pthread_mutex_t out_lock, lock;
	pthread_cond_t idle;
	unsigned workers;
};

static void stdio_send(struct stdio_server *sv, json_t *msg)
{
	char *s = mcp_frame(msg);
	if (!s)
		return;
	pthread_mutex_lock(&sv->out_lock);
	if (write_all(STDOUT_FILENO, s, strlen(s)) < 0)
		print_error("mcp: write to stdout: %s", strerror(errno));
	pthread_mutex_unlock(&sv->out_lock);
	free(s);
}

static void stdio_notify(struct mcp_call *c, json_t *msg, void *ud)
{
	(void)c;
	stdio_send(((struct mcp_tools *)ud)->transport, msg);
}

struct work {
	struct stdio_server *sv;
	json_t *msg;
};

static void *stdio_worker(void *arg)
{
	struct work *w = arg;
	json_t *reply = mcp_dispatch(&w->sv->session, w->msg, NULL);
	if (reply)
		stdio_send(w->sv, reply);
	json_decref(reply);
	json_decref(w->msg);
	pthread_mutex_lock(&w->sv->lock);
	if (--w->sv->workers == 0)
		pthread_cond_broadcast(&w->sv->idle);
	pthread_mutex_unlock(&w->sv->lock);
	free(w);
	return NULL;
}

static void stdio_message(struct stdio_server *sv, const char *line, size_t len)
{
	json_t *reply = NULL;
	json_t *msg = mcp_parse(line, len, &reply);
	if (msg && mcp_message_blocks(msg)) {
		/* a tool call runs on its own thread: cancellations and pings go on meanwhile */
		struct work *w = xcalloc(1, sizeof(*w));
		*w = (struct work){sv, msg};
		pthread_mutex_lock(&sv->lock);
		sv->workers++;
		pthread_mutex_unlock(&sv->lock);
		pthread_t th;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, stdio_worker, w) != 0)
			stdio_worker(w);
		pthread_attr_destroy(&at);
		return;
	}
	if (msg)
		reply = mcp_dispatch(&sv->session, msg, NULL);
	if (reply)
		stdio_send(sv, reply);
	json_decref(reply);
	json_decref(msg);
}

/* Lines of stdin until EOF (false) or a stop signal (stop_fd readable: true). */
static bool stdio_loop(struct stdio_server *sv, int stop_fd)
{
	bool stopped = false;
	size_t cap = 65536, len = 0;
	char *buf = xmalloc(cap);
	bool overlong = false, eof = false;
	while (!eof) {
		struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
				      {.fd = stop_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents) {
			stopped = true;
			break;
		}
		if (len == cap)
			buf = xrealloc(buf, cap *= 2);
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = true;
			n = 0;
			if (len && !overlong)
				buf[len++] = '\n'; /* a last line without its newline */
		}
		len += (size_t)n;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
			size_t l = (size_t)(nl - start);
			if (l && start[l - 1] == '\r')
				l--;
			if (!overlong && l)
				stdio_message(sv, start, l);
			overlong = false;
			start = nl + 1;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		if (len > MCP_MAX_MESSAGE) { /* answer now, skip the rest of that line */
			json_t *reply = NULL;
			mcp_parse(buf, len, &reply);
			stdio_send(sv, reply);
			json_decref(reply);
			overlong = true;
			len = 0;
		}
	}
	free(buf);
	return stopped;
}

static int stop_pipe[2] = {-1, -1};

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;
	sigwait(set, &sig);
	if (write(stop_pipe[1], "x", 1) < 0) { /* the loop stops; nothing else to do */
	}
	return NULL;
}

static int run_stdio(const char *socket)
{
	struct stdio_server sv = {0};
	agentd_error err = {0};
	if (mcp_tools_init(&sv.tools, socket, &err) < 0) {
		print_error("mcp: %s", err.msg);
		return EXIT_AGENTD;
	}
	sv.tools.transport = &sv;
	sv.ops = (struct mcp_ops){.call_tool = mcp_tools_call,
				  .notify = stdio_notify,
				  .cancel = mcp_cancel_call,
				  .ud = &sv.tools};
	pthread_mutex_init(&sv.out_lock, NULL);
	pthread_mutex_init(&sv.lock, NULL);
	pthread_cond_init(&sv.idle, NULL);
	mcp_session_init(&sv.session, &sv.ops, sv.tools.list);
	/* At EOF the calls running finish and are answered (the client may read on); at a
	 * stop signal they are cancelled (their commands killed). Then the session's
	 * sandboxes go. */
	if (stdio_loop(&sv, stop_pipe[0]))
		mcp_session_cancel_all(&sv.session);
	pthread_mutex_lock(&sv.lock);
	while (sv.workers)
		pthread_cond_wait(&sv.idle, &sv.lock);
	pthread_mutex_unlock(&sv.lock);
	mcp_tools_cleanup(&sv.tools);
	mcp_session_destroy(&sv.session);
	mcp_tools_free(&sv.tools);
	return 0;
}

__attribute__((visibility("default"))) int agentd_mcp_main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
					     {"embedded", no_argument, NULL, 'e'},
					     {"listen", required_argument, NULL, 'l'},
					     {"token-file", required_argument, NULL, 't'},
					     {"backend", required_argument, NULL, 'b'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *socket = NULL, *listen = NULL, *token_file = NULL, *backend = NULL;
	bool embedded = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket = optarg;
			break;
		case 'e':
			embedded = true;
			break;
		case 'l':
			listen = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'b':
			backend = optarg;
			break;
		case 'h':
			mcp_usage(stdout);
			return 0;
		default:
			print_error("mcp: bad option '%s' (agentd mcp --help)", argv[optind - 1]);
			return EXIT_AGENTD;
		}
	}
	if (optind < argc || (embedded && socket) || (listen && !token_file) ||
	    (backend && !embedded)) {
		mcp_usage(stderr);
		return EXIT_AGENTD;
	}
	/* one thread takes the stop signals; every other inherits the mask */
	static sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if (pipe2(stop_pipe, O_CLOEXEC) < 0)
		return EXIT_AGENTD;
	struct embedded e = {.pid = 0};
	if (embedded && embedded_start(&e, backend) < 0) {
		embedded_stop(&e);
		return EXIT_AGENTD;
	}
	pthread_t th;
	pthread_create(&th, NULL, signal_thread, &stop);
	pthread_detach(th);
	const char *sock = embedded ? e.socket : socket_path_default(socket);
	int rc = listen ? mcp_http_listen(listen, token_file, sock, stop_pipe[0]) : run_stdio(sock);
	embedded_stop(&e);
	return rc;
}
