// agentd mcp tested with the official MCP TypeScript SDK client, over stdio (agentd mcp
// --embedded) and Streamable HTTP (agentd mcp --listen, and agentd serve's /mcp).
// AGENTD_BUILD: the build dir holding agentd and agentd-serve.so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Ajv from 'ajv';

const build = resolve(process.env.AGENTD_BUILD ?? '../../build');
const agentd = join(build, 'agentd');
const dir = mkdtempSync(join(tmpdir(), 'agentd-mcp-test-'));
const token = 'mcp-test-token-0123456789abcdef';
writeFileSync(join(dir, 'token'), token + '\n', { mode: 0o600 });
const children = [];

function start(args) {
  const p = spawn(agentd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(p);
  return p;
}

async function waitFor(check, what) {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`${what} did not come up`);
}

async function httpUp(url) {
  try { await fetch(url, { method: 'GET' }); return true; } catch { return false; }
}

const port1 = 20000 + (process.pid % 20000), port2 = port1 + 1;
before(async () => {
  // a daemon of the test's own, TCP with the token (its /mcp), and agentd mcp --listen on it
  start(['serve', '--socket', join(dir, 'sock'), '--state-dir', join(dir, 'state'),
    '--destroy-on-exit', '--listen', `127.0.0.1:${port1}`, '--token-file', join(dir, 'token')]);
  await waitFor(() => existsSync(join(dir, 'sock')), 'agentd serve');
  start(['mcp', '--socket', join(dir, 'sock'), '--listen', `127.0.0.1:${port2}`,
    '--token-file', join(dir, 'token')]);
  await waitFor(() => httpUp(`http://127.0.0.1:${port2}/mcp`), 'agentd mcp --listen');
  await waitFor(() => httpUp(`http://127.0.0.1:${port1}/v1/health`), 'agentd serve --listen');
});

after(async () => {
  for (const p of children.reverse()) {
    p.kill('SIGTERM');
    await new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r)));
  }
  rmSync(dir, { recursive: true, force: true });
});

const transports = {
  'stdio (agentd mcp --embedded)': () =>
    new StdioClientTransport({ command: agentd, args: ['mcp', '--embedded'], stderr: 'inherit' }),
  'HTTP (agentd mcp --listen)': () =>
    new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port2}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } } }),
  'HTTP (agentd serve /mcp)': () =>
    new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port1}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } } }),
};

const TOOLS = ['sandbox_create', 'run_code', 'exec', 'read_file', 'write_file', 'list_files',
  'process_start', 'process_read', 'port_open', 'snapshot', 'restore', 'sandbox_destroy',
  'sandbox_list'];

for (const [name, make] of Object.entries(transports)) {
  test(`MCP over ${name}`, { timeout: 300000 }, async (t) => {
    const client = new Client({ name: 'agentd-test', version: '1.0.0' });
    await client.connect(make());
    after(() => client.close());
    assert.equal(client.getServerVersion().name, 'agentd');

    await t.test('lists every tool with a valid input and output schema', async () => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((x) => x.name).sort(), [...TOOLS].sort());
      const ajv = new Ajv({ strict: false });
      for (const tool of tools) {
        assert.ok(tool.description.length > 40, `${tool.name} has a description`);
        assert.equal(tool.inputSchema.type, 'object');
        ajv.compile(tool.inputSchema);
        ajv.compile(tool.outputSchema);
      }
    });

    const create = await client.callTool({ name: 'sandbox_create', arguments: { profile: 'standard' } });
    assert.equal(create.isError, false, JSON.stringify(create));
    const sid = create.structuredContent.sandbox_id;
    assert.match(sid, /^[0-9a-f]{32}$/);
    const call = async (tool, args) => {
      const r = await client.callTool({ name: tool, arguments: { sandbox_id: sid, ...args } });
      assert.equal(r.isError, false, `${tool}: ${JSON.stringify(r.content)}`);
      return r.structuredContent;
    };

    await t.test('run_code keeps state between calls', async () => {
      await call('run_code', { language: 'python', code: 'x = 20' });
      const r = await call('run_code', { language: 'python', code: 'x + 22' });
      assert.equal(r.result, '42');
      const b = await call('run_code', { language: 'bash', code: 'echo hi' });
      assert.equal(b.stdout, 'hi\n');
    });

    await t.test('exec, files, processes, list, snapshot, restore, port', async () => {
      const e = await call('exec', { command: 'echo out; echo err >&2; exit 3' });
      assert.deepEqual([e.exit_code, e.stdout, e.stderr], [3, 'out\n', 'err\n']);
      await call('write_file', { path: '/tmp/a/b.txt', content: 'héllo' });
      assert.equal((await call('read_file', { path: '/tmp/a/b.txt' })).content, 'héllo');
      const ls = await call('list_files', { path: '/tmp/a' });
      assert.deepEqual(ls.entries.map((x) => x.name), ['b.txt']);
      const p = await call('process_start', { command: 'echo started; sleep 0.2; echo later' });
      let out;
      for (let i = 0; i < 100; i++) {
        out = await call('process_read', { pid: p.pid });
        if (out.state !== 'running') break;
        await sleep(100);
      }
      assert.equal(out.stdout, 'started\nlater\n');
      assert.equal(out.stdout_next_offset, 14);
      const list = await client.callTool({ name: 'sandbox_list', arguments: {} });
      assert.ok(list.structuredContent.sandboxes.some((x) => x.id === sid));
      const snap = await call('snapshot', {});
      await call('write_file', { path: '/tmp/a/b.txt', content: 'changed' });
      await call('restore', { snapshot_id: snap.id });
      assert.equal((await call('read_file', { path: '/tmp/a/b.txt' })).content, 'héllo');
      const port = await call('port_open', { port: 8000 });
      assert.match(port.address, /^127\.0\.0\.1:\d+$/);
    });

    await t.test('streams progress of a long call', async () => {
      const seen = [];
      const r = await client.callTool({ name: 'exec', arguments: { sandbox_id: sid,
        command: 'for i in 1 2 3; do echo tick$i; sleep 0.3; done' } }, undefined,
      { onprogress: (p) => seen.push(p) });
      assert.equal(r.isError, false);
      assert.ok(seen.length >= 2, `progress: ${JSON.stringify(seen)}`);
      assert.match(seen[0].message, /tick1/);
    });

    await t.test('cancelling a call kills its command', async () => {
      const ac = new AbortController();
      let started;
      const progressed = new Promise((r) => { started = r; });
      const running = client.callTool({ name: 'exec', arguments: { sandbox_id: sid,
        command: 'echo started; sleep 3; touch /tmp/finished' } }, undefined,
      { signal: ac.signal, onprogress: started });
      await progressed; // it runs
      ac.abort();
      await assert.rejects(running);
      await sleep(5000); // past the moment it would have finished
      const r = await client.callTool({ name: 'exec', arguments: { sandbox_id: sid,
        command: 'test -e /tmp/finished && echo finished || echo killed' } });
      assert.equal(r.structuredContent.stdout, 'killed\n', 'the cancelled command was killed');
    });

    await t.test('a limit comes back as a tool error a model can read', async () => {
      const r = await client.callTool({ name: 'exec', arguments: { sandbox_id: sid,
        command: 'sleep 10', timeout_s: 1 } });
      assert.equal(r.isError, true);
      assert.match(r.content[0].text, /timed out after 1 s/);
      const bad = await client.callTool({ name: 'read_file', arguments: { sandbox_id: sid, path: '/tmp/nope' } });
      assert.equal(bad.isError, true);
      assert.match(bad.content[0].text, /read_file: .*No such file/);
    });

    await t.test('a memory limit that kills a command is a tool error naming it', async () => {
      const small = await client.callTool({ name: 'sandbox_create', arguments: { limits: { memory_mb: 64 } } });
      const r = await client.callTool({ name: 'exec', arguments: {
        sandbox_id: small.structuredContent.sandbox_id,
        command: 'python3 -c "b = bytearray(512 << 20); print(len(b))"' } });
      assert.equal(r.isError, true, JSON.stringify(r));
      assert.match(r.content[0].text, /killed: memory limit 64 MiB/);
      await client.callTool({ name: 'sandbox_destroy', arguments: { sandbox_id: small.structuredContent.sandbox_id } });
    });

    if (name.startsWith('HTTP')) {
      await t.test('ending an HTTP session (DELETE) destroys its sandboxes', async () => {
        const other = new Client({ name: 'agentd-test-2', version: '1.0.0' });
        const transport = make();
        await other.connect(transport);
        const made = await other.callTool({ name: 'sandbox_create', arguments: {} });
        const id = made.structuredContent.sandbox_id;
        await transport.terminateSession();
        await other.close();
        const list = await client.callTool({ name: 'sandbox_list', arguments: {} });
        assert.ok(!list.structuredContent.sandboxes.some((x) => x.id === id), 'destroyed');
      });
    }

    const d = await call('sandbox_destroy', {});
    assert.equal(d.state, 'destroyed');
  });
}
