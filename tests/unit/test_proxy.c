/* test_proxy.c: the egress proxy in-process (so ASan and UBSan see it run): a real listener
 * handed to agentd_proxy_add_sandbox, a real origin server on loopback, and the decisions
 * as the log callback receives them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "lib/core/core.h"

/* ------------------------------------------------------------ log capture */

struct logged {
	agentd_netlog_event event;
	char host[256], reason[256], id[AGENTD_ID_LEN];
	uint64_t up, down;
};
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct logged events[64];
static size_t nevents;

static void capture(void *ud, const agentd_netlog *ev)
{
	pthread_mutex_lock(&log_lock);
	if (nevents < ARRAY_SIZE(events)) {
		struct logged *l = &events[nevents++];
		l->event = ev->event;
		snprintf(l->host, sizeof(l->host), "%s", ev->host);
		snprintf(l->reason, sizeof(l->reason), "%s", ev->reason);
		snprintf(l->id, sizeof(l->id), "%s", ev->sandbox_id);
		l->up = ev->bytes_up;
		l->down = ev->bytes_down;
	}
	pthread_mutex_unlock(&log_lock);
}

/* Wait (bounded) until n events were logged; returns how many there are. */
static size_t wait_events(size_t n)
{
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&log_lock);
		size_t have = nevents;
		pthread_mutex_unlock(&log_lock);
		if (have >= n)
			return have;
		usleep(10000);
	}
	return nevents;
}

/* ------------------------------------------------------------ sockets */

static int listen_loopback(uint16_t *port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(in);
	assert_int_equal(bind(s, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(s, 64), 0);
	getsockname(s, (struct sockaddr *)&in, &l);
	*port = ntohs(in.sin_port);
	return s;
}

static int connect_loopback(uint16_t port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(s, (struct sockaddr *)&in, sizeof(in)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Everything until EOF (bounded by a poll timeout). */
static size_t read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;
	while (n < cap - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return n;
}

/* The origin: answers one request per connection, remembers the last one it got. */
struct origin {
	int fd;
	uint16_t port;
	pthread_t thread;
	char last[4096];
	size_t bulk; /* > 0: answer with this many body bytes */
	size_t sent; /* body bytes written so far (atomic) */
};

static void *origin_main(void *arg)
{
	struct origin *o = arg;
	for (;;) {
		int c = accept(o->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		size_t n = 0;
		while (n < sizeof(o->last) - 1 && !memmem(o->last, n, "\r\n\r\n", 4)) {
			ssize_t r = read(c, o->last + n, sizeof(o->last) - 1 - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		o->last[n] = '\0';
		if (o->bulk) {
			static char chunk[65536];
			for (size_t left = o->bulk; left;) {
				ssize_t w =
				    write(c, chunk, left < sizeof(chunk) ? left : sizeof(chunk));
				if (w <= 0)
					break;
				left -= (size_t)w;
				__atomic_add_fetch(&o->sent, (size_t)w, __ATOMIC_SEQ_CST);
			}
			close(c);
			continue;
		}
		const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
		if (write(c, resp, strlen(resp)) < 0) {
			/* the proxy went away: the test will say so */
		}
		close(c);
	}
}

static void origin_start(struct origin *o)
{
	o->fd = listen_loopback(&o->port);
	pthread_create(&o->thread, NULL, origin_main, o);
}

static void origin_stop(struct origin *o)
{
	shutdown(o->fd, SHUT_RDWR);
	pthread_join(o->thread, NULL);
	close(o->fd);
}

/* A proxy serving one "sandbox" whose listener is on loopback here. */
struct fixture {
	agentd_proxy *px;
	uint16_t lport;
	struct origin origin;
};

static void start_cfg(struct fixture *f, const char *host, agentd_proxy_config cfg, size_t bulk)
{
	memset(f, 0, sizeof(*f));
	nevents = 0;
	f->origin.bulk = bulk;
	origin_start(&f->origin);
	cfg.on_log = capture;
	agentd_error err = {0};
	f->px = agentd_proxy_start(&cfg, &err);
	assert_non_null(f->px);
	char entry[128];
	snprintf(entry, sizeof(entry), "%s:%u", host, f->origin.port);
	agentd_strv allow = {0};
	strv_push(&allow, entry);
	int lfd = listen_loopback(&f->lport);
	assert_int_equal(agentd_proxy_add_sandbox(f->px, lfd, "sb-test", &allow, &err), 0);
	strv_free(&allow);
}

static void start(struct fixture *f, const char *host, uint32_t header_timeout_ms)
{
	agentd_proxy_config cfg = {.header_timeout_ms = header_timeout_ms};
	start_cfg(f, host, cfg, 0);
}

static void stop(struct fixture *f)
{
	agentd_proxy_stop(f->px);
	origin_stop(&f->origin);
}

static size_t request(struct fixture *f, const char *req, char *resp, size_t cap)
{
	int c = connect_loopback(f->lport);
	assert_true(c >= 0);
	assert_int_equal(write(c, req, strlen(req)), (ssize_t)strlen(req));
	size_t n = read_all(c, resp, cap, 5000);
	close(c);
	return n;
}

/* A request naming the origin's port (fmt has one %u). */
#define REQUEST_ORIGIN(f, fmt, resp)                                                               \
	do {                                                                                       \
		char req_[512];                                                                    \
		snprintf(req_, sizeof(req_), fmt, (f).origin.port);                                \
		request(&(f), req_, resp, sizeof(resp));                                           \
	} while (0)

/* ------------------------------------------------------------ tests */

static void allowed_request_is_rewritten_relayed_and_logged(void **state __attribute__((unused)))
{
	struct fixture f;
	char resp[4096];
	start(&f, "127.0.0.1", 0);
	REQUEST_ORIGIN(f,
		       "GET http://127.0.0.1:%u/x?y HTTP/1.1\r\nProxy-Connection: keep-alive\r\n"
		       "Host: a\r\n\r\n",
		       resp);
	assert_non_null(strstr(resp, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(resp, "\r\n\r\nok"));
	assert_int_equal(wait_events(2), 2);
	assert_int_equal(events[0].event, AGENTD_NETLOG_ALLOWED);
	assert_string_equal(events[0].id, "sb-test");
	assert_int_equal(events[1].event, AGENTD_NETLOG_CLOSED);
	assert_true(events[1].down == strlen("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
	/* what the origin saw: origin form, no proxy headers, the connection closed after */
	assert_non_null(strstr(f.origin.last, "GET /x?y HTTP/1.1\r\n"));
	assert_null(strstr(f.origin.last, "Proxy-Connection"));
	assert_non_null(strstr(f.origin.last, "Connection: close\r\n"));
	stop(&f);
}

static void unlisted_targets_get_403_with_the_reason(void **state __attribute__((unused)))
{
	struct fixture f;
	char resp[4096];
	start(&f, "127.0.0.1", 0);
	request(&f, "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", resp, sizeof(resp));
	assert_non_null(strstr(resp, "HTTP/1.1 403 Forbidden"));
	assert_non_null(strstr(resp, "loopback address not in the allowlist"));
	request(&f, "GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\n\r\n", resp,
		sizeof(resp));
	assert_non_null(strstr(resp, "cloud metadata address not in the allowlist"));
	/* the list's address entry is for another port: an unlisted name is not even looked
	 * up (the lookup would carry the name out through DNS) */
	request(&f, "GET http://unlisted.example/ HTTP/1.1\r\n\r\n", resp, sizeof(resp));
	assert_non_null(strstr(resp, "not in the allowlist"));
	request(&f, "BREW coffee://pot HTTP/1.1\r\n\r\n", resp, sizeof(resp));
	assert_non_null(strstr(resp, "HTTP/1.1 400 Bad Request"));
	assert_int_equal(wait_events(4), 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(events[i].event, AGENTD_NETLOG_DENIED);
	stop(&f);
}

static void listed_name_resolving_to_loopback_is_refused(void **state __attribute__((unused)))
{
	struct fixture f;
	char resp[4096];
	start(&f, "localhost", 0);
	REQUEST_ORIGIN(f, "GET http://localhost:%u/ HTTP/1.1\r\n\r\n", resp);
	assert_non_null(strstr(resp, "HTTP/1.1 403"));
	assert_non_null(strstr(resp, "resolves to loopback address"));
	assert_null(strstr(f.origin.last, "GET")); /* the origin never saw it */
	stop(&f);
}

static void slow_header_times_out(void **state __attribute__((unused)))
{
	struct fixture f;
	char resp[4096];
	start(&f, "127.0.0.1", 300);
	int c = connect_loopback(f.lport);
	assert_int_equal(write(c, "GET http://127.0.0.1/ HTTP/1.1\r\nX: ", 35), 35);
	uint64_t t0 = now_ms_monotonic();
	read_all(c, resp, sizeof(resp), 3000);
	uint64_t took = now_ms_monotonic() - t0;
	close(c);
	assert_non_null(strstr(resp, "HTTP/1.1 408 Request Timeout"));
	assert_true(took >= 250 && took < 2000);
	stop(&f);
}

static void a_slow_reader_holds_back_the_origin(void **state __attribute__((unused)))
{
	struct fixture f;
	const size_t total = 64u << 20;
	agentd_proxy_config cfg = {0};
	start_cfg(&f, "127.0.0.1", cfg, total);
	char req[128];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/bulk HTTP/1.1\r\n\r\n", f.origin.port);
	int c = connect_loopback(f.lport);
	assert_int_equal(write(c, req, strlen(req)), (ssize_t)strlen(req));
	/* not reading: the origin must stall once the socket buffers and the proxy's 1 MiB
	 * are full, far before all 64 MiB */
	size_t before = 0, now;
	for (int i = 0; i < 50; i++) {
		usleep(20000);
		now = __atomic_load_n(&f.origin.sent, __ATOMIC_SEQ_CST);
		if (now && now == before)
			break;
		before = now;
	}
	now = __atomic_load_n(&f.origin.sent, __ATOMIC_SEQ_CST);
	assert_true(now > 0 && now < total / 2);
	/* and every byte arrives once the reader reads */
	static char buf[1 << 20];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(c, buf, sizeof(buf));
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(c);
	assert_int_equal(got, total);
	stop(&f);
}

static void one_sandbox_cannot_take_every_connection(void **state __attribute__((unused)))
{
	struct fixture f;
	agentd_proxy_config cfg = {.max_connections = 8, .max_per_sandbox = 2};
	start_cfg(&f, "127.0.0.1", cfg, 0);
	int a = connect_loopback(f.lport), b = connect_loopback(f.lport);
	int c = connect_loopback(f.lport);
	char buf[16];
	/* the third is accepted and closed at once: EOF without a byte */
	struct pollfd pc = {.fd = c, .events = POLLIN};
	assert_int_equal(poll(&pc, 1, 2000), 1);
	assert_int_equal(read(c, buf, sizeof(buf)), 0);
	struct pollfd pa = {.fd = a, .events = POLLIN};
	assert_int_equal(poll(&pa, 1, 100), 0); /* the first two stay open */
	assert_int_equal(wait_events(1), 1);
	assert_int_equal(events[0].event, AGENTD_NETLOG_DENIED);
	assert_string_equal(events[0].reason, "too many connections from this sandbox");
	close(a);
	close(b);
	close(c);
	stop(&f);
}

static void removed_sandbox_listener_is_closed(void **state __attribute__((unused)))
{
	struct fixture f;
	start(&f, "127.0.0.1", 0);
	int c = connect_loopback(f.lport);
	assert_true(c >= 0);
	close(c);
	agentd_proxy_remove_sandbox(f.px, "sb-test");
	assert_int_equal(connect_loopback(f.lport), -1);
	stop(&f);
}

static void bad_allowlist_is_refused_and_fd_closed(void **state __attribute__((unused)))
{
	agentd_error err = {0};
	agentd_proxy *px = agentd_proxy_start(NULL, &err);
	assert_non_null(px);
	agentd_strv allow = {0};
	strv_push(&allow, "foo:99999");
	uint16_t port;
	int lfd = listen_loopback(&port);
	assert_int_equal(agentd_proxy_add_sandbox(px, lfd, "x", &allow, &err), -1);
	assert_string_equal(
	    err.msg, "network.allow[0]: invalid entry \"foo:99999\": invalid port (1..65535)");
	assert_int_equal(connect_loopback(port), -1); /* taken over, so closed */
	strv_free(&allow);
	agentd_proxy_stop(px);
}


/* issue 15: vm-map. A micro-VM's sandbox has no listener: each guest connection comes as one
 * end of a socketpair, judged by that sandbox's allowlist and logged as its own. */
static void handed_connections_are_judged_as_the_sandboxs(void **state __attribute__((unused)))
{
	struct fixture f;
	start(&f, "127.0.0.1", 0);
	agentd_error err = {0};
	char entry[64];
	snprintf(entry, sizeof(entry), "127.0.0.1:%u", f.origin.port);
	agentd_strv allow = {0};
	strv_push(&allow, entry);
	assert_int_equal(agentd_proxy_add_sandbox(f.px, -1, "sb-vm", &allow, &err), 0);
	strv_free(&allow);
	char req[256], resp[4096];
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(agentd_proxy_add_connection(f.px, "sb-vm", sp[1], &err), 0);
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/vm HTTP/1.1\r\nHost: a\r\n\r\n",
		 f.origin.port);
	assert_int_equal(write(sp[0], req, strlen(req)), (ssize_t)strlen(req));
	read_all(sp[0], resp, sizeof(resp), 5000);
	close(sp[0]);
	assert_non_null(strstr(resp, "\r\n\r\nok"));
	assert_non_null(strstr(f.origin.last, "GET /vm HTTP/1.1\r\n"));
	/* a target its list does not name: refused, audited as this sandbox's */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(agentd_proxy_add_connection(f.px, "sb-vm", sp[1], &err), 0);
	const char *denied = "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n";
	assert_int_equal(write(sp[0], denied, strlen(denied)), (ssize_t)strlen(denied));
	read_all(sp[0], resp, sizeof(resp), 5000);
	close(sp[0]);
	assert_non_null(strstr(resp, "HTTP/1.1 403 Forbidden"));
	assert_int_equal(wait_events(3), 3);
	assert_int_equal(events[0].event, AGENTD_NETLOG_ALLOWED);
	assert_string_equal(events[0].id, "sb-vm");
	assert_int_equal(events[2].event, AGENTD_NETLOG_DENIED);
	assert_string_equal(events[2].id, "sb-vm");
	/* a sandbox the proxy does not serve: refused, the fd closed */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(agentd_proxy_add_connection(f.px, "sb-none", sp[1], &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(read(sp[0], resp, 1), 0);
	close(sp[0]);
	agentd_proxy_remove_sandbox(f.px, "sb-vm");
	stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(allowed_request_is_rewritten_relayed_and_logged),
	    cmocka_unit_test(unlisted_targets_get_403_with_the_reason),
	    cmocka_unit_test(listed_name_resolving_to_loopback_is_refused),
	    cmocka_unit_test(slow_header_times_out),
	    cmocka_unit_test(a_slow_reader_holds_back_the_origin),
	    cmocka_unit_test(one_sandbox_cannot_take_every_connection),
	    cmocka_unit_test(removed_sandbox_listener_is_closed),
	    cmocka_unit_test(bad_allowlist_is_refused_and_fd_closed),
	    /* issue 15: vm-map */
	    cmocka_unit_test(handed_connections_are_judged_as_the_sandboxs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
