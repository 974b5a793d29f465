// node.js: agentd's runner for Node code contexts (docs/contexts.md), run by the sandbox's
// own node as `node -e SRC`; standard library only. Node cannot dup2 its own fds, so this
// process supervises a kernel (the same source, as a child) whose fd 1 and 2 are pipes it
// relays as frames, and speaks the framed protocol on its own stdin and stdout.
'use strict';
const fs = require('fs');
const util = require('util');

const MAX_CHUNK = 65536;

function frame(kind, id, payload) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  return Buffer.concat([Buffer.from(`${kind} ${id} ${body.length}\n`), body]);
}

function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function supervisor() {
  const { spawn } = require('child_process');
  const kernel = spawn(process.execPath, process.execArgv, {
    env: Object.assign({}, process.env, { AGENTD_NODE_KERNEL: '1' }),
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let cell = 0; // the running cell; output outside a cell is dropped
  const send = (kind, id, payload) => writeAll(1, frame(kind, id, payload));
  const relay = (kind) => (chunk) => {
    for (let off = 0; cell && off < chunk.length; off += MAX_CHUNK)
      send(kind, cell, chunk.subarray(off, off + MAX_CHUNK));
  };
  kernel.stdout.on('data', relay('out'));
  kernel.stderr.on('data', relay('err'));
  // What the kernel wrote before a message goes out before it.
  const drain = () => {
    const buf = Buffer.alloc(MAX_CHUNK);
    for (const [stream, kind] of [[kernel.stdout, 'out'], [kernel.stderr, 'err']]) {
      for (;;) {
        let n = 0;
        try {
          n = fs.readSync(stream._handle.fd, buf, 0, buf.length, null);
        } catch (e) {
          break; // EAGAIN: empty
        }
        if (n <= 0) break;
        if (cell) send(kind, cell, Buffer.from(buf.subarray(0, n)));
      }
    }
  };
  kernel.on('message', (m) => {
    drain();
    if (m.kind === 'hello') {
      send('hello', 0, JSON.stringify({ language: 'node', version: process.versions.node, pid: process.pid }));
      return;
    }
    if (m.id !== cell) return;
    send(m.kind, m.id, JSON.stringify(m.body));
    if (m.kind === 'done') cell = 0;
  });
  kernel.on('exit', (code, sig) => {
    process.stderr.write(`agentd runner: the node kernel exited (${sig || code})\n`);
    process.exit(code === null ? 1 : code);
  });
  process.on('SIGINT', () => kernel.kill('SIGINT'));

  // Requests: KIND ID LEN\n then LEN bytes.
  let buf = Buffer.alloc(0);
  let env = {};
  process.stdin.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      const [kind, id, len] = buf.subarray(0, nl).toString().split(' ');
      const n = Number(len);
      if (buf.length < nl + 1 + n) return;
      const payload = buf.subarray(nl + 1, nl + 1 + n).toString('utf8');
      buf = buf.subarray(nl + 1 + n);
      if (kind === 'env') {
        const eq = payload.indexOf('=');
        env[payload.slice(0, eq)] = payload.slice(eq + 1);
      } else if (kind === 'run') {
        cell = Number(id);
        kernel.send({ id: cell, code: payload, env });
        env = {};
      }
    }
  });
  process.stdin.on('end', () => {
    kernel.kill('SIGKILL');
    process.exit(0);
  });
}

function kernel() {
  const vm = require('vm');
  const path = require('path');
  const Module = require('module');
  delete process.env.AGENTD_NODE_KERNEL;
  const sandbox = {};
  const ctx = vm.createContext(sandbox);
  // Node's globals (console, process, Buffer, timers, fetch...) into the context.
  const own = new Set(Object.getOwnPropertyNames(vm.runInContext('globalThis', ctx)));
  for (const k of Object.getOwnPropertyNames(globalThis))
    if (!own.has(k)) Object.defineProperty(sandbox, k, Object.getOwnPropertyDescriptor(globalThis, k));
  sandbox.console = console; // the context's own is V8's, which prints nowhere
  sandbox.global = sandbox;
  sandbox.require = Module.createRequire(path.join(process.cwd(), '<cell>'));
  sandbox.module = { exports: {} };
  sandbox.exports = sandbox.module.exports;
  sandbox.__dirname = process.cwd();
  sandbox.__filename = path.join(process.cwd(), '<cell>');

  let interrupt = null; // rejects the awaited promise of a cell on SIGINT
  process.on('SIGINT', () => { if (interrupt) interrupt(new Error('Script execution interrupted.')); });
  process.on('uncaughtException', (e) => process.stderr.write(`Uncaught ${util.inspect(e)}\n`));
  process.on('unhandledRejection', (e) => process.stderr.write(`Unhandled rejection ${util.inspect(e)}\n`));

  // The cell's frames, not the runner's or node's own.
  const trim = (stack) => stack.split('\n').filter((l) => !/node:|\[eval\]|sigintHandlersWrap/.test(l)).join('\n');
  const post = (kind, id, body) => new Promise((resolve) => process.send({ kind, id, body }, resolve));
  const errorOf = (e) => (e instanceof Error || (e && e.stack)
    ? { name: e.name || 'Error', value: String(e.message), traceback: trim(String(e.stack)) }
    : { name: 'Error', value: util.inspect(e), traceback: 'Uncaught ' + util.inspect(e) });

  process.on('message', async ({ id, code, env }) => {
    const saved = {};
    for (const k of Object.keys(env)) { saved[k] = process.env[k]; process.env[k] = env[k]; }
    let status = 'ok';
    try {
      let value = vm.runInContext(code, ctx, { filename: `<cell ${id}>`, breakOnSigint: true });
      if (value && typeof value.then === 'function')
        value = await new Promise((resolve, reject) => { interrupt = reject; value.then(resolve, reject); });
      if (value !== undefined)
        await post('result', id, { 'text/plain': util.inspect(value, { colors: false }) });
    } catch (e) {
      status = 'error';
      await post('error', id, errorOf(e));
    } finally {
      interrupt = null;
      for (const k of Object.keys(saved))
        if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    }
    await post('done', id, { status });
  });
  process.send({ kind: 'hello' });
}

if (process.env.AGENTD_NODE_KERNEL === '1') kernel();
else supervisor();
