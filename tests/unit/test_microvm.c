/* test_microvm.c: the microvm backend's host side without a VM — the guest channel
 * (chan.c) and the QMP client (qmp.c) over socketpairs, the other end played by this test:
 * HELLO and its version check, an exec's output delivered in order with credit returned as
 * consumed, stdin fed within the guest's credit, the exit and limit mapped to agentd's, and
 * every hostile frame (data beyond credit, a channel never opened, a frame before HELLO, an
 * answer to no request, a bad header, a host-only type) breaking the channel with a message,
 * never more. And the verdict: a vCPU that runs is not KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/backends/microvm/microvm.h"

static uint8_t fbuf[GP_HDR_SIZE + GP_MAX_PAYLOAD];

static void put_frame(int fd, uint16_t type, uint32_t chan, const void *p, size_t n)
{
	struct gp_hdr h = {.len = (uint32_t)n, .type = type, .chan = chan};
	gp_hdr_encode(fbuf, &h);
	if (n)
		memcpy(fbuf + GP_HDR_SIZE, p, n);
	assert_int_equal(write_all(fd, fbuf, GP_HDR_SIZE + n), 0);
}

static void put_fields(int fd, uint16_t type, uint32_t chan, struct gp_writer *w)
{
	put_frame(fd, type, chan, w->buf, w->len);
}

static void hello(int fd, uint64_t major)
{
	uint8_t b[128];
	struct gp_writer w;
	gp_w_init(&w, b, sizeof(b));
	gp_w_u64(&w, GP_T_VERSION, major << 16);
	gp_w_str(&w, GP_T_AGENT, "test-double");
	put_fields(fd, GP_HELLO, 0, &w);
}

/* The next whole frame the host sent: its header, payload into p (cap bytes). */
static void get_frame(int fd, struct gp_hdr *h, uint8_t *p, size_t cap)
{
	uint8_t hb[GP_HDR_SIZE];
	size_t got = 0;
	while (got < sizeof(hb)) {
		ssize_t n = read(fd, hb + got, sizeof(hb) - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(gp_hdr_decode(hb, h), 0);
	assert_true(h->len <= cap);
	got = 0;
	while (got < h->len) {
		ssize_t n = read(fd, p + got, h->len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

struct pair {
	struct vm_chan *ch;
	int guest;
};

static void open_pair(struct pair *p, bool say_hello)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->ch = vm_chan_new(sv[0], -1, -1, NULL);
	assert_non_null(p->ch);
	p->guest = sv[1];
	if (say_hello) {
		hello(p->guest, GP_VERSION_MAJOR);
		struct vm_hello h;
		assert_int_equal(vm_chan_wait_hello(p->ch, 5000, &h, NULL), 0);
		assert_string_equal(h.agent, "test-double");
	}
}

static void close_pair(struct pair *p)
{
	vm_chan_free(p->ch);
	close(p->guest);
}

/* Until the channel says it is broken (bounded): its reason. */
static void wait_broken(struct pair *p, const char *expect)
{
	char why[256] = "";
	for (int i = 0; i < 500 && !vm_chan_broken(p->ch, why, sizeof(why)); i++)
		usleep(10000);
	assert_true(vm_chan_broken(p->ch, why, sizeof(why)));
	if (!strstr(why, expect))
		fail_msg("broken for %s, expected %s", why, expect);
}

static void a_hello_of_another_major_version_is_refused(void **state)
{
	(void)state;
	struct pair p;
	open_pair(&p, false);
	hello(p.guest, GP_VERSION_MAJOR + 1);
	struct vm_hello h;
	agentd_error err = {0};
	assert_int_equal(vm_chan_wait_hello(p.ch, 5000, &h, &err), -1);
	assert_non_null(strstr(err.msg, "another protocol version"));
	close_pair(&p);
}

static void a_guest_that_never_says_hello_times_out(void **state)
{
	(void)state;
	struct pair p;
	open_pair(&p, false);
	struct vm_hello h;
	agentd_error err = {0};
	assert_int_equal(vm_chan_wait_hello(p.ch, 200, &h, &err), -1);
	assert_int_equal(err.code, ETIMEDOUT);
	close_pair(&p);
}

/* ------------------------------------------------------------- an exec, the guest's side */

struct guest_exec {
	int fd;
	uint64_t stdin_bytes;
	bool stdin_eof;
	int credit_frames;
	uint64_t credit_back;
	char argv0[64];
	uint64_t mem;
};

static void stream(void *ud, agentd_stream s, const uint8_t *d, size_t n)
{
	agentd_strv *seen = ud;
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%d:%.*s", (int)s, (int)(n < 40 ? n : 40), (const char *)d);
	strv_push(seen, tmp);
}

static void *guest_runs_exec(void *arg)
{
	struct guest_exec *g = arg;
	static uint8_t p[GP_MAX_PAYLOAD];
	struct gp_hdr h;
	get_frame(g->fd, &h, p, sizeof(p));
	assert_int_equal(h.type, GP_EXEC);
	uint32_t chan = h.chan;
	struct gp_reader r;
	struct gp_field f;
	gp_r_init(&r, p, h.len);
	bool first = true;
	while (gp_r_next(&r, &f) == 1) {
		if (f.tag == GP_T_ARG && first) {
			gp_f_str(&f, g->argv0, sizeof(g->argv0));
			first = false;
		}
		if (f.tag == GP_T_MEM_BYTES)
			gp_f_u64(&f, &g->mem);
	}
	uint8_t b[64];
	struct gp_writer w;
	/* stdin until EOF (an empty frame), within the initial credit */
	while (!g->stdin_eof) {
		get_frame(g->fd, &h, p, sizeof(p));
		if (h.type == GP_STDIN) {
			g->stdin_bytes += h.len;
			g->stdin_eof = h.len == 0;
		}
	}
	/* output: more than the initial credit, in order, waiting for credit back */
	uint64_t credit = GP_INITIAL_CREDIT, sent = 0;
	const uint64_t total = 3 * GP_INITIAL_CREDIT;
	static char chunk[16384];
	int seq = 0;
	while (sent < total) {
		while (credit < sizeof(chunk)) {
			get_frame(g->fd, &h, p, sizeof(p));
			assert_int_equal(h.type, GP_CREDIT);
			gp_r_init(&r, p, h.len);
			uint64_t v = 0;
			while (gp_r_next(&r, &f) == 1)
				if (f.tag == GP_T_BYTES)
					gp_f_u64(&f, &v);
			credit += v;
			g->credit_back += v;
			g->credit_frames++;
		}
		memset(chunk, 'a' + seq % 26, sizeof(chunk));
		snprintf(chunk, 16, "%06d", seq++);
		put_frame(g->fd, seq % 2 ? GP_STDOUT : GP_STDERR, chan, chunk, sizeof(chunk));
		credit -= sizeof(chunk);
		sent += sizeof(chunk);
	}
	gp_w_init(&w, b, sizeof(b));
	gp_w_u64(&w, GP_T_EXIT_CODE, 0);
	gp_w_u64(&w, GP_T_SIGNAL, 9);
	gp_w_u64(&w, GP_T_LIMIT, GP_LIMIT_MEMORY);
	gp_w_u64(&w, GP_T_PEAK_MEM, 12345);
	put_fields(g->fd, GP_EXIT, chan, &w);
	return NULL;
}

static void an_exec_streams_in_order_with_credit_and_maps_its_end(void **state)
{
	(void)state;
	struct pair p;
	open_pair(&p, true);
	struct guest_exec g = {.fd = p.guest};
	pthread_t t;
	pthread_create(&t, NULL, guest_runs_exec, &g);
	static uint8_t in[100000];
	memset(in, 'i', sizeof(in));
	char *argv[] = {"prog", NULL};
	agentd_strv seen = {0};
	struct vm_exec_req rq = {.argv = argv, .cwd = "/", .stdin_data = in,
				 .stdin_len = sizeof(in), .timeout_ms = 30000,
				 .max_output_bytes = 1 << 20, .mem_bytes = 64 << 20,
				 .on_output = stream, .userdata = &seen, .cancel_fd = -1};
	agentd_exec_output out = {0};
	agentd_error err = {0};
	assert_int_equal(vm_exec(p.ch, &rq, &out, &err), 0);
	pthread_join(t, NULL);
	assert_string_equal(g.argv0, "prog");
	assert_int_equal(g.mem, 64 << 20);
	assert_int_equal(g.stdin_bytes, sizeof(in));
	/* credit came back as the host consumed, and only for what it consumed */
	assert_true(g.credit_frames > 0);
	assert_true(g.credit_back <= 3 * GP_INITIAL_CREDIT);
	/* in order: sequence numbers alternate stdout/stderr and never go back */
	int last = -1;
	for (size_t i = 0; i < seen.n; i++) {
		int n = atoi(strchr(seen.v[i], ':') + 1);
		assert_int_equal(n, last + 1);
		last = n;
	}
	assert_int_equal(out.out_len + out.err_len, 3 * GP_INITIAL_CREDIT);
	assert_int_equal(out.term_signal, 9);
	assert_int_equal(out.exit_code, 137);
	assert_int_equal(out.limit_hit, AGENTD_LIMIT_MEMORY);
	assert_true(out.resource_limited);
	assert_int_equal(out.usage.peak_memory_bytes, 12345);
	strv_free(&seen);
	agentd_exec_output_free(&out);
	close_pair(&p);
}

/* ------------------------------------------------------------- hostile frames */

struct hostile {
	int fd;
	int mode;
};

static void *guest_misbehaves(void *arg)
{
	struct hostile *hs = arg;
	static uint8_t p[GP_MAX_PAYLOAD];
	struct gp_hdr h;
	get_frame(hs->fd, &h, p, sizeof(p));
	assert_int_equal(h.type, GP_EXEC);
	static uint8_t junk[GP_MAX_PAYLOAD];
	uint8_t raw[GP_HDR_SIZE] = {0};
	switch (hs->mode) {
	case 0: /* beyond the credit granted */
		for (int i = 0; i < 5; i++)
			put_frame(hs->fd, GP_STDOUT, h.chan, junk, sizeof(junk));
		break;
	case 1: /* a channel never opened */
		put_frame(hs->fd, GP_STDOUT, h.chan + 7, "x", 1);
		break;
	case 2: /* a frame type only the host sends */
		put_frame(hs->fd, GP_EXEC, h.chan, NULL, 0);
		break;
	case 3: /* a header announcing more than GP_MAX_PAYLOAD */
		raw[0] = 0x01;
		raw[2] = 0x01; /* 0x10001 */
		raw[4] = GP_STDOUT;
		assert_int_equal(write_all(hs->fd, raw, sizeof(raw)), 0);
		break;
	case 4: /* an exit code no process has */
	{
		uint8_t b[32];
		struct gp_writer w;
		gp_w_init(&w, b, sizeof(b));
		gp_w_u64(&w, GP_T_EXIT_CODE, 4096);
		put_fields(hs->fd, GP_EXIT, h.chan, &w);
		break;
	}
	case 5: /* a PONG nobody asked for */
		put_frame(hs->fd, GP_PONG, 0, NULL, 0);
		break;
	}
	return NULL;
}

/* A slow reader: the host returns no credit meanwhile, so the guest's flood overdraws. */
static void slow_reader(void *ud, agentd_stream s, const uint8_t *d, size_t n)
{
	(void)ud, (void)s, (void)d, (void)n;
	usleep(300000);
}

static void hostile_frames_break_the_channel_with_a_reason(void **state)
{
	(void)state;
	static const char *const expect[] = {
		"beyond the credit", "not open", "only the host sends", "malformed frame header",
		"does not accept (EXIT)", "answer to no request",
	};
	for (int mode = 0; mode < (int)ARRAY_SIZE(expect); mode++) {
		struct pair p;
		open_pair(&p, true);
		struct hostile hs = {.fd = p.guest, .mode = mode};
		pthread_t t;
		pthread_create(&t, NULL, guest_misbehaves, &hs);
		char *argv[] = {"x", NULL};
		struct vm_exec_req rq = {.argv = argv, .cwd = "/", .stdin_null = true,
					 .timeout_ms = 30000, .max_output_bytes = 1 << 20,
					 .on_output = slow_reader, .cancel_fd = -1};
		agentd_exec_output out = {0};
		agentd_error err = {0};
		assert_int_equal(vm_exec(p.ch, &rq, &out, &err), -1);
		pthread_join(t, NULL);
		wait_broken(&p, expect[mode]);
		if (!strstr(err.msg, expect[mode]))
			fail_msg("mode %d: %s", mode, err.msg);
		agentd_exec_output_free(&out);
		close_pair(&p);
	}
}

/* Output without end, always within the credit the host returned, deaf to the kill: the
 * host's own deadline must still end it (and break the VM), however fast it keeps up. */
static void *guest_floods_within_credit(void *arg)
{
	int fd = *(int *)arg;
	static uint8_t p[GP_MAX_PAYLOAD];
	static uint8_t chunk[8192];
	struct gp_hdr h;
	get_frame(fd, &h, p, sizeof(p));
	uint32_t chan = h.chan;
	uint64_t credit = GP_INITIAL_CREDIT;
	for (;;) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, credit >= sizeof(chunk) ? 0 : 1000) > 0) {
			uint8_t hb[GP_HDR_SIZE];
			if (read(fd, hb, sizeof(hb)) != (ssize_t)sizeof(hb) || gp_hdr_decode(hb, &h) < 0)
				return NULL; /* the host hung up */
			if (h.len && read(fd, p, h.len) != (ssize_t)h.len)
				return NULL;
			struct gp_reader r;
			struct gp_field f;
			uint64_t v;
			gp_r_init(&r, p, h.len);
			while (h.type == GP_CREDIT && gp_r_next(&r, &f) == 1)
				if (f.tag == GP_T_BYTES && gp_f_u64(&f, &v) == 0)
					credit += v;
		}
		if (credit >= sizeof(chunk)) {
			struct gp_hdr o = {.len = sizeof(chunk), .type = GP_STDOUT, .chan = chan};
			uint8_t ob[GP_HDR_SIZE];
			gp_hdr_encode(ob, &o);
			if (write_all(fd, ob, sizeof(ob)) < 0 || write_all(fd, chunk, sizeof(chunk)) < 0)
				return NULL;
			credit -= sizeof(chunk);
		}
	}
}

static void a_flood_within_credit_still_meets_the_deadline(void **state)
{
	(void)state;
	struct pair p;
	open_pair(&p, true);
	pthread_t t;
	pthread_create(&t, NULL, guest_floods_within_credit, &p.guest);
	char *argv[] = {"x", NULL};
	struct vm_exec_req rq = {.argv = argv, .cwd = "/", .stdin_null = true, .timeout_ms = 500,
				 .max_output_bytes = 1 << 16, .cancel_fd = -1};
	agentd_exec_output out = {0};
	agentd_error err = {0};
	uint64_t t0 = now_ms_monotonic();
	assert_int_equal(vm_exec(p.ch, &rq, &out, &err), -1);
	assert_true(now_ms_monotonic() - t0 < 30000);
	assert_non_null(strstr(err.msg, "within"));
	wait_broken(&p, "did not end a timed-out command");
	shutdown(p.guest, SHUT_RDWR);
	vm_chan_free(p.ch);
	pthread_join(t, NULL);
	close(p.guest);
	agentd_exec_output_free(&out);
}

static void a_frame_before_hello_breaks_the_channel(void **state)
{
	(void)state;
	struct pair p;
	open_pair(&p, false);
	put_frame(p.guest, GP_STDOUT, 1, "x", 1);
	wait_broken(&p, "before HELLO");
	close_pair(&p);
}

/* ------------------------------------------------------------- QMP */

static void qmp_skips_events_and_reports_errors(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	const char *script =
		"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n"
		"{\"return\": {}}\r\n"
		"{\"event\": \"STOP\", \"data\": {}}\r\n"
		"{\"return\": {\"status\": \"paused\"}}\r\n"
		"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such thing\"}}\r\n";
	assert_int_equal(write_all(sv[1], script, strlen(script)), 0);
	struct vm_qmp q;
	vm_qmp_init(&q, sv[0]);
	assert_int_equal(vm_qmp_handshake(&q, 2000, NULL), 0);
	json_t *r = vm_qmp_execute(&q, "query-status", NULL, -1, 2000, NULL);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "paused");
	json_decref(r);
	agentd_error err = {0};
	assert_null(vm_qmp_execute(&q, "bogus", NULL, -1, 2000, &err));
	assert_non_null(strstr(err.msg, "no such thing"));
	/* nothing more: the deadline */
	assert_null(vm_qmp_execute(&q, "stop", NULL, -1, 100, &err));
	assert_int_equal(err.code, ETIMEDOUT);
	/* a line past the bound is refused, not buffered without end */
	static char big[VM_QMP_LINE_MAX + 16];
	memset(big, 'x', sizeof(big));
	pid_t pid = fork();
	if (pid == 0) {
		write_all(sv[1], big, sizeof(big));
		_exit(0);
	}
	assert_null(vm_qmp_execute(&q, "stop", NULL, -1, 5000, &err));
	assert_int_equal(err.code, EPROTO);
	waitpid(pid, NULL, 0);
	vm_qmp_close(&q);
	close(sv[1]);
}

/* ------------------------------------------------------------- the verdict */

static void a_vcpu_that_runs_is_not_kvm(void **state)
{
	(void)state;
	struct vm_verdict v = {.pvm = true};
	/* what a bare vCPU check says (under KVM-PVM it passes) is no input: only the guest's
	 * HELLO under KVM counts */
	vm_verdict_decide(&v, false, "the guest did not boot under KVM: no HELLO in 20000 ms");
	assert_false(v.kvm);
	assert_non_null(strstr(v.accel_why, "KVM-PVM"));
	vm_verdict_decide(&v, true, "");
	assert_true(v.kvm);
	assert_string_equal(v.accel_why, "");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_hello_of_another_major_version_is_refused),
		cmocka_unit_test(a_guest_that_never_says_hello_times_out),
		cmocka_unit_test(an_exec_streams_in_order_with_credit_and_maps_its_end),
		cmocka_unit_test(hostile_frames_break_the_channel_with_a_reason),
		cmocka_unit_test(a_frame_before_hello_breaks_the_channel),
		cmocka_unit_test(a_flood_within_credit_still_meets_the_deadline),
		cmocka_unit_test(qmp_skips_events_and_reports_errors),
		cmocka_unit_test(a_vcpu_that_runs_is_not_kvm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
