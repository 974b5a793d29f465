/* cmd_attach.c: `agentd sandbox attach ID PID` and `agentd sandbox exec -it ID -- PROG` — a
 * person's terminal on a process's pty through the daemon's WebSocket (docs/cli.md#attach,
 * docs/api.md#attach). Our terminal is raw while attached (Ctrl-C is a byte for the program,
 * not a signal for us) and restored on every way out; its size follows SIGWINCH. */
#include "cli/cli.h"
#include "common/ws.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

/* Ctrl-P Ctrl-Q, as docker's: leave the process running (attach only). */
#define DETACH_1 0x10
#define DETACH_2 0x11
#define SERVER_MAX_MESSAGE (1u << 20)

struct session {
	int sock;
	struct ws_reader rd;
	bool detach_keys;		/* attach: Ctrl-P Ctrl-Q detaches */
	bool held_p;			/* a Ctrl-P waits for the next key */
	bool stdin_open;
	bool have_exit;
	struct ws_control exit;
	char error[256];		/* the daemon's error message, or ours */
	int stop_signal;		/* SIGTERM/SIGHUP/... ended us */
	bool detached;
	struct term_filter filter;	/* its output to our terminal */
};

/* ------------------------------------------------------------ the local terminal */

static struct termios saved_tio;
static bool tio_saved;

static void term_restore(void)
{
	/* TCSAFLUSH: what the terminal answered to the program's last queries and we did not
	 * read is dropped, not typed into the shell we return to */
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	tio_saved = false;
}

/* Raw mode: every key as a byte (Ctrl-C, Ctrl-Z, Ctrl-\ included), no local echo. */
static int term_raw(void)
{
	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return -1;
	struct termios raw = saved_tio;
	cfmakeraw(&raw);
	raw.c_oflag |= OPOST | ONLCR; /* our own messages still start at column 0 */
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	tio_saved = true;
	atexit(term_restore);
	return tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
}

static void winsize(unsigned *rows, unsigned *cols)
{
	struct winsize ws = {0};
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col)
		ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
	*rows = ws.ws_row ? ws.ws_row : 24;
	*cols = ws.ws_col ? ws.ws_col : 80;
	if (*rows > WS_MAX_WINSIZE)
		*rows = WS_MAX_WINSIZE;
	if (*cols > WS_MAX_WINSIZE)
		*cols = WS_MAX_WINSIZE;
}

/* ------------------------------------------------------------ the WebSocket */

/* A frame to the daemon. One that cannot go (the daemon closed after the process ended)
 * stops our input; what the daemon sent before its close is still read. */
static int send_frame(struct session *s, enum ws_opcode op, const void *data, size_t len)
{
	uint8_t mask[4];
	if (getrandom(mask, sizeof(mask), 0) != sizeof(mask))
		return -1;
	_cleanup_free_ uint8_t *buf = xmalloc(WS_MAX_HEADER + len);
	size_t h = ws_frame_header(buf, op, len, mask);
	memcpy(buf + h, data, len);
	ws_mask(buf + h, len, mask, 0);
	for (size_t off = 0; off < h + len;) {
		ssize_t w = send(s->sock, buf + off, h + len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			s->stdin_open = false;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

static int send_resize(struct session *s)
{
	struct ws_control c = {.type = WS_CTL_RESIZE};
	winsize(&c.rows, &c.cols);
	_cleanup_free_ char *j = ws_control_format(&c);
	return send_frame(s, WS_OP_TEXT, j, strlen(j));
}

/* The upgrade request; on 101 the bytes read past the head go to the frame reader. On
 * another answer, the daemon's error message (its JSON body) is returned in s->error. */
static int handshake(struct session *s, const char *path)
{
	uint8_t raw[16];
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return -1;
	_cleanup_free_ char *key = base64_encode(raw, sizeof(raw));
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: agentd\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n\r\n",
			 path, key);
	if (n < 0 || (size_t)n >= sizeof(req) || write_all(s->sock, req, (size_t)n) < 0) {
		snprintf(s->error, sizeof(s->error), "send to the daemon: %s", strerror(errno));
		return -1;
	}
	char head[8192];
	size_t len = 0;
	char *end = NULL;
	while (!end) {
		if (len == sizeof(head) - 1) {
			snprintf(s->error, sizeof(s->error), "the daemon's answer head is too long");
			return -1;
		}
		ssize_t r = read(s->sock, head + len, sizeof(head) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(s->error, sizeof(s->error), "the daemon closed the connection");
			return -1;
		}
		len += (size_t)r;
		head[len] = '\0';
		end = strstr(head, "\r\n\r\n");
	}
	size_t hl = (size_t)(end + 4 - head);
	int status = 0;
	sscanf(head, "HTTP/1.%*d %d", &status);
	if (status != 101) {
		json_t *j = json_loadb(head + hl, len - hl, 0, NULL);
		const char *m = json_string_value(
			json_object_get(json_object_get(j, "error"), "message"));
		snprintf(s->error, sizeof(s->error), "%s (HTTP %d)", m ? m : "refused", status);
		json_decref(j);
		return -1;
	}
	char want[29], line[64];
	ws_accept_key(key, want);
	snprintf(line, sizeof(line), "\r\nSec-WebSocket-Accept: %s\r\n", want);
	if (!strcasestr(head, line)) {
		snprintf(s->error, sizeof(s->error), "the daemon's upgrade answer is not a "
			 "WebSocket one");
		return -1;
	}
	size_t space;
	uint8_t *dst = ws_reader_space(&s->rd, &space);
	if (len - hl > space)
		return -1;
	memcpy(dst, head + hl, len - hl);
	ws_reader_commit(&s->rd, len - hl);
	return 0;
}

/* ------------------------------------------------------------ the session */

/* The signals that end a session (or resize it), taken through a signalfd: blocked from
 * before the process exists, so none kills us between its start and the attachment. */
static void block_signals(sigset_t *set)
{
	static const int sigs[] = {SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGQUIT};
	sigemptyset(set);
	for (size_t k = 0; k < ARRAY_SIZE(sigs); k++)
		sigaddset(set, sigs[k]);
	sigprocmask(SIG_BLOCK, set, NULL);
}

/* Keys to the process; with detach keys, Ctrl-P Ctrl-Q detaches (a Ctrl-P followed by
 * anything else goes through with it). 1 when the user detached. */
static int on_keys(struct session *s, const uint8_t *buf, size_t n)
{
	uint8_t out[4097];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s->detach_keys && s->held_p) {
			s->held_p = false;
			if (buf[i] == DETACH_2)
				return send_frame(s, WS_OP_BINARY, out, k) < 0 ? -1 : 1;
			out[k++] = DETACH_1;
		}
		if (s->detach_keys && buf[i] == DETACH_1) {
			s->held_p = true;
			continue;
		}
		out[k++] = buf[i];
	}
	return k ? send_frame(s, WS_OP_BINARY, out, k) : 0;
}

/* What the daemon sent: 1 once the session is over (close frame), -1 on a protocol error. */
static int on_daemon(struct session *s)
{
	struct ws_message m;
	int k;
	while ((k = ws_reader_next(&s->rd, &m)) == 1) {
		if (m.op == WS_OP_BINARY) {
			_cleanup_free_ uint8_t *shown = xmalloc(m.len + 8);
			size_t n = term_filter(&s->filter, m.data, m.len, shown);
			(void)write_all(STDOUT_FILENO, shown, n); /* the program's screen */
		} else if (m.op == WS_OP_TEXT) {
			struct ws_control c;
			const char *why;
			if (ws_control_parse(m.data, m.len, &c, &why) < 0)
				continue; /* a newer daemon's message */
			if (c.type == WS_CTL_EXIT) {
				s->exit = c;
				s->have_exit = true;
			} else if (c.type == WS_CTL_ERROR) {
				snprintf(s->error, sizeof(s->error), "%s", c.message);
			}
		} else if (m.op == WS_OP_PING) {
			send_frame(s, WS_OP_PONG, m.data, m.len);
		} else if (m.op == WS_OP_CLOSE) {
			uint8_t code[2] = {0x03, 0xE8};
			send_frame(s, WS_OP_CLOSE, code, 2);
			return 1;
		}
	}
	if (k < 0)
		snprintf(s->error, sizeof(s->error), "bad frame from the daemon: %s", s->rd.why);
	return k;
}

static int read_daemon(struct session *s)
{
	size_t space;
	uint8_t *dst = ws_reader_space(&s->rd, &space);
	ssize_t n = read(s->sock, dst, space);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0) {
		if (!s->have_exit && !s->error[0])
			snprintf(s->error, sizeof(s->error), "the connection to the daemon was lost");
		return 1;
	}
	ws_reader_commit(&s->rd, (size_t)n);
	return on_daemon(s);
}

static int read_keys(struct session *s)
{
	uint8_t buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		s->stdin_open = false; /* the program reads on; its exit ends us */
		return 0;
	}
	if (on_keys(s, buf, (size_t)n) == 1) {
		uint8_t code[2] = {0x03, 0xE8};
		send_frame(s, WS_OP_CLOSE, code, 2);
		s->detached = true;
		return 1;
	}
	return 0;
}

/* A signal of sigfd: SIGWINCH resizes, the others end the session. 1 to stop. */
static int on_signal(struct session *s, int sigfd)
{
	struct signalfd_siginfo si;
	if (read(sigfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	if (si.ssi_signo == SIGWINCH) {
		send_resize(s);
		return 0;
	}
	s->stop_signal = (int)si.ssi_signo;
	return 1;
}

static void loop(struct session *s, int sigfd)
{
	if (on_daemon(s) != 0)
		return;
	for (;;) {
		struct pollfd pf[3] = {
			{.fd = s->sock, .events = POLLIN},
			{.fd = s->stdin_open ? STDIN_FILENO : -1, .events = POLLIN},
			{.fd = sigfd, .events = POLLIN},
		};
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pf[2].revents && on_signal(s, sigfd) != 0)
			return;
		if (pf[1].revents && read_keys(s) != 0)
			return;
		if (pf[0].revents && read_daemon(s) != 0)
			return;
	}
}

/* Attach to pid of sandbox id until it ends, we detach or a signal ends us. Returns the
 * exit code for our caller: the process's, 0 on detach, 128+N for our signal N. */
static int run_session(const char *sock, const char *id, long long pid, bool foreground)
{
	struct session s = {.sock = -1, .detach_keys = !foreground, .stdin_open = true};
	ws_reader_init(&s.rd, false, SERVER_MAX_MESSAGE, SERVER_MAX_MESSAGE);
	struct client_conn c;
	agentd_error err = {0};
	char path[256];
	/* exec -it replays the output from its start (the prompt came before we attached) */
	snprintf(path, sizeof(path), "/v1/sandboxes/%.64s/processes/%lld/attach%s", id, pid,
		 foreground ? "?offset=0&foreground=1" : "");
	if (client_connect(sock, &c, &err) < 0) {
		print_error("attach: %s", err.msg);
		return EXIT_AGENTD;
	}
	s.sock = c.fd;
	sigset_t set;
	block_signals(&set);
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	int rc = EXIT_AGENTD;
	if (handshake(&s, path) < 0) {
		print_error("attach to process %lld of sandbox %s: %s", pid, id, s.error);
		goto out;
	}
	if (isatty(STDIN_FILENO) && term_raw() < 0) {
		print_error("attach: put the terminal in raw mode: %s", strerror(errno));
		goto out;
	}
	send_resize(&s); /* the program gets our size, full-screen ones redraw */
	loop(&s, sigfd);
	term_restore();
	if (s.have_exit)
		rc = s.exit.exit_code;
	else if (s.detached)
		rc = 0;
	else if (s.stop_signal)
		rc = 128 + s.stop_signal;
	if (s.detached)
		fprintf(stderr, "agentd: detached; process %lld keeps running (agentd sandbox "
			"attach %s %lld)\n", pid, id, pid);
	else if (!s.have_exit && s.error[0])
		print_error("attach: %s", s.error);
out:
	term_restore();
	ws_reader_free(&s.rd);
	client_close(&c);
	if (sigfd >= 0)
		close(sigfd);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	return rc;
}

int cmd_attach(const char *sock, int argc, char **argv, int i)
{
	if (argc - i != 2) {
		print_error("sandbox attach: expected ID PID (see agentd sandbox --help)");
		return EXIT_AGENTD;
	}
	char *end;
	long long pid = strtoll(argv[i + 1], &end, 10);
	if (*end || pid <= 0 || strlen(argv[i]) > 64) {
		print_error("sandbox attach: bad ID or PID");
		return EXIT_AGENTD;
	}
	if (!isatty(STDIN_FILENO)) {
		print_error("sandbox attach: stdin is not a terminal (attach is for a person at "
			    "one; `agentd sandbox logs --follow` reads the output and `agentd sandbox "
			    "stdin` writes the input)");
		return EXIT_AGENTD;
	}
	return run_session(sock, argv[i], pid, false);
}

/* The TERM the program gets: ours when it is a plain name, else xterm. */
static const char *term_name(void)
{
	const char *t = getenv("TERM");
	if (!t || !*t || strlen(t) > 64 || strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO"
						  "PQRSTUVWXYZ0123456789.-_+") != strlen(t))
		return "xterm";
	return t;
}

int cmd_exec_tty(const char *sock, const char *id, char **argv, const agentd_kvv *env,
		 const char *workdir)
{
	if (!isatty(STDIN_FILENO)) {
		print_error("sandbox exec -t: stdin is not a terminal (-t gives the command a "
			    "terminal for a person at one; without -t, -i sends stdin)");
		return EXIT_AGENTD;
	}
	unsigned rows, cols;
	winsize(&rows, &cols);
	sigset_t set;
	block_signals(&set); /* a signal now ends the session once it runs, killing the process */
	json_t *av = json_array(), *ev = json_object();
	for (char **a = argv; *a; a++)
		json_array_append_new(av, json_string(*a));
	json_object_set_new(ev, "TERM", json_string(term_name()));
	for (size_t k = 0; k < env->n; k++)
		json_object_set_new(ev, env->v[k].key, json_string(env->v[k].value));
	json_t *body = json_pack("{s:o, s:o, s:b, s:i, s:i}", "argv", av, "env", ev, "tty", 1,
				 "rows", (int)rows, "cols", (int)cols);
	if (workdir)
		json_object_set_new(body, "workdir", json_string(workdir));
	char path[160];
	snprintf(path, sizeof(path), "/v1/sandboxes/%.64s/processes", id);
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(sock, "POST", path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("sandbox exec: %s", err.msg);
		return EXIT_AGENTD;
	}
	if (status != 201) {
		int rc = client_report_error("sandbox exec", status, j);
		json_decref(j);
		return rc;
	}
	long long pid = (long long)json_integer_value(json_object_get(j, "pid"));
	json_decref(j);
	int rc = run_session(sock, id, pid, true);
	if (rc == EXIT_AGENTD) {
		/* we never attached (or lost the daemon): the process is not left behind */
		snprintf(path, sizeof(path), "/v1/sandboxes/%.64s/processes/%lld", id, pid);
		json_decref(client_call(sock, "DELETE", path, NULL, &status, &err));
	}
	return rc;
}
