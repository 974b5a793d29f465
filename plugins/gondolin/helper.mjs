// gondolin-helper.mjs: the gondolin plugin's helper, one process per sandbox: it drives one
// gondolin VM (@earendil-works/gondolin) and speaks NDJSON on stdio (docs/gondolin.md).
//
// Requests arrive on stdin, one JSON object a line: {"id", "op", ...}. Every request is
// answered once, {"id", "ok": true, "result"?} or {"id", "ok": false, "error": {code,
// message}}; an exec's output and end are events {"event", "exec", ...} that follow its
// answer. The plugin treats all of it as untrusted; this file only has to keep to the
// protocol. Written for Node >= 20 so that the probe runs (and says what is missing) on an
// older Node than gondolin needs.
import { createInterface } from "node:readline";
import { createRequire } from "node:module";
import { pathToFileURL, fileURLToPath } from "node:url";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const NODE_NEEDED = [23, 6, 0];
const PKG = "@earendil-works/gondolin";
const CHUNK = 48 * 1024; // raw output bytes per event (the plugin bounds lines at 256 KiB)

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + "\n");
}

function answer(id, result) {
  send(result === undefined ? { id, ok: true } : { id, ok: true, result });
}

function refuse(id, code, message) {
  send({ id, ok: false, error: { code, message: String(message).slice(0, 300) } });
}

function nodeVersionOk() {
  const have = process.versions.node.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if (have[i] !== NODE_NEEDED[i]) return have[i] > NODE_NEEDED[i];
  }
  return true;
}

// Where the package may be: beside this file (a local install), $AGENTD_GONDOLIN_MODULES
// (a node_modules dir), the global npm roots.
function packageDir() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const paths = [here];
  if (process.env.AGENTD_GONDOLIN_MODULES) paths.push(process.env.AGENTD_GONDOLIN_MODULES);
  paths.push("/usr/local/lib/node_modules", "/usr/lib/node_modules");
  try {
    const req = createRequire(import.meta.url);
    return path.dirname(req.resolve(`${PKG}/package.json`, { paths }));
  } catch {
    return null;
  }
}

async function loadGondolin() {
  const dir = packageDir();
  if (!dir) throw new Error(`the npm package ${PKG} is not installed`);
  return import(pathToFileURL(path.join(dir, "dist", "src", "index.js")).href);
}

function onPath(name) {
  for (const d of (process.env.PATH || "/usr/bin:/bin").split(":")) {
    try {
      fs.accessSync(path.join(d, name), fs.constants.X_OK);
      return path.join(d, name);
    } catch {}
  }
  return null;
}

function qemuName() {
  return process.arch === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

// The default guest image, present locally (gondolin downloads it on first use otherwise):
// the same places gondolin looks, without its package.
function imagePresent() {
  const has = (dir) =>
    ["vmlinuz-virt", "initramfs.cpio.lz4", "rootfs.ext4"].every((f) =>
      fs.existsSync(path.join(dir, f)),
    ) || fs.existsSync(path.join(dir, "manifest.json"));
  if (process.env.GONDOLIN_GUEST_DIR) return has(process.env.GONDOLIN_GUEST_DIR);
  const store =
    process.env.GONDOLIN_IMAGE_STORE ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "gondolin", "images");
  const [name, tag = "latest"] = (process.env.GONDOLIN_DEFAULT_IMAGE || "alpine-base:latest").split(":");
  const arch = process.arch === "arm64" ? "aarch64" : "x86_64";
  const link = path.join(store, "refs", name, tag, arch);
  try {
    return has(path.resolve(path.dirname(link), fs.readlinkSync(link)));
  } catch {
    return false;
  }
}

function kvmUsable() {
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

// Each missing piece named on its own.
async function probe() {
  const missing = [], features = [], warnings = [];
  const need = NODE_NEEDED.join(".");
  if (nodeVersionOk()) features.push(`node-${process.versions.node}`);
  else missing.push(`node v${process.versions.node} found, >= ${need} needed`);
  let mod = null;
  if (!packageDir()) missing.push(`npm package ${PKG} not installed`);
  else if (nodeVersionOk()) {
    try {
      mod = await loadGondolin();
      features.push("gondolin-package");
    } catch (e) {
      missing.push(`npm package ${PKG} does not load: ${e.message}`.slice(0, 120));
    }
  }
  const qemu = onPath(qemuName());
  if (qemu) features.push(qemuName());
  else missing.push(`${qemuName()} not on PATH`);
  const image = mod && typeof mod.hasGuestAssets === "function" ? mod.hasGuestAssets() : imagePresent();
  if (image) features.push("guest-image");
  else
    missing.push("no local guest image (gondolin fetches one online on first use)");
  if (kvmUsable()) features.push("accel-kvm");
  else missing.push("no usable accelerator (/dev/kvm)");
  return { available: missing.length === 0, missing, features, warnings };
}

// agentd's "*.domain" is every name below the domain, not the domain itself.
function hostMatches(host, pattern) {
  host = host.toLowerCase();
  pattern = pattern.toLowerCase();
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return host === pattern;
}

let g = null; // the gondolin module
let vm = null;
let vmOptions = null;
let workdir = "/";
const execs = new Map();

function optionsFor(cfg) {
  const o = { env: cfg.env || {}, sandbox: {} };
  if (cfg.memory) o.memory = cfg.memory;
  if (cfg.cpus) o.cpus = cfg.cpus;
  const mounts = {};
  for (const m of cfg.mounts || [])
    mounts[m.guest] = new g.ReadonlyProvider(new g.RealFSProvider(m.host));
  o.vfs = Object.keys(mounts).length ? { mounts } : null;
  const net = cfg.network || { mode: "none" };
  if (net.mode === "none") {
    o.sandbox.netEnabled = false;
  } else {
    const allow = net.allow || [];
    o.httpHooks = g.createHttpHooks({
      allowedHosts: allow.length ? allow.map((e) => e.host) : [],
      // host and port both: "api.example.com:443" does not open port 80 of it
      isIpAllowed: (info) => allow.some((e) => hostMatches(info.hostname, e.host) && e.port === info.port),
    }).httpHooks;
  }
  return o;
}

async function create(cfg) {
  if (!nodeVersionOk()) throw new Error(`node v${process.versions.node} is too old: gondolin needs >= ${NODE_NEEDED.join(".")}`);
  g = await loadGondolin();
  vmOptions = optionsFor(cfg);
  vm = await g.VM.create(vmOptions);
  workdir = cfg.workdir || "/";
  const r = await vm.exec(["/bin/mkdir", "-p", workdir]);
  if (r.exitCode !== 0) throw new Error(`mkdir ${workdir} in the guest: exit ${r.exitCode}`);
}

const pidFile = (id) => `/tmp/.agentd-exec-${id}.pid`;

function exec(id, req) {
  // through sh: its pid is recorded (signals name it), PATH is searched, 127 when not found
  const argv = ["/bin/sh", "-c", `echo $$ > ${pidFile(id)}; exec "$@"`, "agentd-exec", ...req.argv];
  const proc = vm.exec(argv, {
    env: req.env || {},
    cwd: req.cwd || workdir,
    stdin: req.stdin ? true : false,
    stdout: "pipe",
    stderr: "pipe",
  });
  execs.set(id, proc);
  answer(id);
  (async () => {
    let exit = { exit_code: 125, signal: null };
    try {
      for await (const chunk of proc.output()) {
        for (let o = 0; o < chunk.data.length; o += CHUNK)
          send({ event: "output", exec: id, stream: chunk.stream, data: chunk.data.subarray(o, o + CHUNK).toString("base64") });
      }
      const r = await proc;
      exit = { exit_code: r.exitCode & 255, signal: r.signal || null };
    } catch (e) {
      process.stderr.write(`exec ${id}: ${e.message}\n`);
    }
    execs.delete(id);
    send({ event: "exit", exec: id, ...exit });
  })();
}

function signal(id, req) {
  if (!execs.has(req.exec)) return refuse(id, "ended", `exec ${req.exec} has ended`);
  const sig = Number(req.signal) | 0;
  const f = pidFile(req.exec);
  // the pid is written by the exec's first instruction: wait a moment for it
  vm.exec(["/bin/sh", "-c", `for i in 1 2 3 4 5 6 7 8 9 10; do [ -s ${f} ] && break; sleep 0.1; done; kill -${sig} "$(cat ${f})"`]).catch(() => {});
  answer(id);
}

function stdin(id, req) {
  const proc = execs.get(req.exec);
  if (!proc) return refuse(id, "ended", `exec ${req.exec} has ended`);
  if (req.data) proc.write(Buffer.from(req.data, "base64"));
  if (req.eof) proc.end();
  answer(id);
}

async function checkpoint(p) {
  const ck = await vm.checkpoint(p); // stops the VM: it goes on from the checkpoint
  vm = await ck.resume(vmOptions);
}

async function restore(p) {
  await vm.close();
  vm = await g.VmCheckpoint.load(p).resume(vmOptions);
}

async function close() {
  if (vm) await vm.close();
  vm = null;
}

async function handle(req) {
  const id = req.id;
  try {
    switch (req.op) {
      case "probe":
        return answer(id, await probe());
      case "create":
        await create(req.config || {});
        return answer(id);
      case "exec":
        return exec(id, req);
      case "stdin":
        return stdin(id, req);
      case "signal":
        return signal(id, req);
      case "checkpoint":
        await checkpoint(req.path);
        return answer(id);
      case "restore":
        await restore(req.path);
        return answer(id);
      case "close":
        await close();
        answer(id);
        return process.exit(0);
      default:
        return refuse(id, "unsupported", `unknown op ${req.op}`);
    }
  } catch (e) {
    refuse(id, "failed", e.message);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  handle(req);
});
// the plugin's end (destroy, or its process died): the VM goes with this process
rl.on("close", async () => {
  try {
    await close();
  } finally {
    process.exit(0);
  }
});
