// Types of @agentd/sdk (hand-written next to the plain ESM sources; `npm run typecheck`
// checks them with tsc --noEmit, test/types.ts uses every call).
/// <reference types="node" />
import type {IncomingMessage} from 'node:http';

export type Json = null | boolean | number | string | Json[] | {[key: string]: Json};
/** A MIME bundle: `{"text/plain": "2", "image/png": "<base64>"}`. */
export type MimeBundle = {[mimeType: string]: string};

export interface ClientOptions {
	/** The daemon's unix socket; default as `agentd` finds it ($AGENTD_SOCKET, ...). */
	socketPath?: string;
	/** `http://127.0.0.1:PORT` of `agentd serve --listen`, with `token`. */
	url?: string;
	token?: string;
}

export function defaultSocketPath(env?: NodeJS.ProcessEnv): string;

export type Profile = 'strict' | 'standard' | 'permissive';
export type NetworkMode = 'none' | 'allowlist' | 'host';

export class Policy {
	constructor(profile?: Profile);
	spec: {[key: string]: Json};
	static strict(): Policy;
	static standard(): Policy;
	static permissive(): Policy;
	static from(spec: object): Policy;
	profile(name: Profile): this;
	workdir(path: string): this;
	readOnly(...paths: string[]): this;
	readWrite(...paths: string[]): this;
	bindMount(source: string, target: string, opts?: {readonly?: boolean}): this;
	network(mode: NetworkMode, allow?: string[]): this;
	allow(...entries: string[]): this;
	env(name: string, value: string): this;
	environment(vars: Record<string, string>): this;
	label(key: string, value: string): this;
	labels(map: Record<string, string>): this;
	limit(key: string, value: number): this;
	memory(bytes: number): this;
	cpuTime(ms: number): this;
	wallTime(ms: number): this;
	processes(n: number): this;
	openFiles(n: number): this;
	outputBytes(n: number): this;
	writeBytes(n: number): this;
	snapshotBytes(n: number): this;
	processOutputBytes(n: number): this;
	cpuWeight(n: number): this;
	cpuQuotaPct(n: number): this;
	seccomp(profile: string): this;
	runAs(uid: number, gid: number): this;
	toJSON(): {[key: string]: Json};
}

export class AgentdError extends Error {
	constructor(status: number, code: string, message: string, body?: object | null);
	/** HTTP status; 0 when no answer came (ConnectionError). */
	status: number;
	/** The daemon's code: `bad_request`, `not_found`, `conflict`, `too_large`, ... */
	code: string;
	/** The limit a 413/429/507 names (`limits.max_snapshot_bytes`, `--max-sandboxes`). */
	limit: string | null;
	body: object | null;
}
export class BadRequestError extends AgentdError {}
export class UnauthorizedError extends AgentdError {}
export class NotFoundError extends AgentdError {}
export class ConflictError extends AgentdError {}
/** A bound was hit: 413, 429, 507 (`limit` names it). */
export class LimitExceededError extends AgentdError {
	/** With `check: true`: the result a limit killed or cut. */
	result?: ExecResult | RunResult;
}
export class TooLargeError extends LimitExceededError {}
export class OverCapacityError extends LimitExceededError {}
export class NotSupportedError extends AgentdError {}
export class UnavailableError extends AgentdError {}
export class InsufficientStorageError extends LimitExceededError {}
export class ConnectionError extends AgentdError {}
/** 408; a command or cell that timed out (`check: true`; `result` is its result). */
export class TimeoutError extends AgentdError {
	result?: ExecResult | RunResult;
}
/** A non-zero exit or a cell not ok (`check: true`); `result` is its result. */
export class CommandFailedError extends AgentdError {
	result?: ExecResult | RunResult;
}

export interface ResourceUsage {
	peakMemoryBytes: number;
	cpuTimeMs: number;
	wallTimeMs: number;
	bytesWritten: number;
	bytesRead: number;
}

/** docs/exit-codes.md#json-output, camelCase; stdout/stderr as text. */
export interface ExecResult {
	exitCode: number;
	termSignal?: number;
	stdout: string;
	stderr: string;
	durationMs: number;
	timedOut: boolean;
	resourceLimited: boolean;
	limitHit: 'memory' | 'pids' | 'cpu' | 'output' | 'write' | null;
	outputTruncated: boolean;
	unenforced: string[];
	resourceUsage: ResourceUsage;
	backend: string | null;
	sandboxId: string | null;
	cancelled: boolean;
	reason?: string;
}

export type Chunk = string | Uint8Array;
export type OnOutput = (text: string, bytes: Uint8Array) => void | Promise<void>;

export interface ExecOptions {
	env?: Record<string, string>;
	workdir?: string;
	stdin?: Chunk;
	timeoutMs?: number;
	onStdout?: OnOutput;
	onStderr?: OnOutput;
	/** Aborting it kills the command (the connection closes). */
	signal?: AbortSignal;
	/** Throw for a timeout (TimeoutError), a limit (LimitExceededError, `limit`) or
	 * another non-zero exit (CommandFailedError) instead of resolving. */
	check?: boolean;
}

export type OutputEvent<Exit> =
	| {type: 'stdout' | 'stderr'; text: string; bytes: Uint8Array; offset?: number}
	| {type: 'dropped'; stream: 'stdout' | 'stderr'; offset: number; dropped: number}
	| {type: 'exit'; exit: Exit};

export interface SandboxInfo {
	id: string;
	name?: string | null;
	backend: string;
	state: string;
	createdMs: number;
	runningExecs?: number;
	durable?: boolean;
	policyDigest: string;
	capabilities?: {[key: string]: Json};
	unenforced?: string[];
	labels?: Record<string, string>;
	network?: {mode: NetworkMode; allow: string[]};
	spec?: {[key: string]: Json};
	ttlMs?: number | null;
	expiresAtMs?: number | null;
	idleTimeoutMs?: number | null;
	idleDeadlineMs?: number | null;
	lastActivityMs?: number | null;
	onExpire?: 'destroy' | 'suspend';
	[key: string]: unknown;
}

export interface Usage {
	id: string;
	peakMemoryBytes: number;
	cpuTimeMs: number;
	cpuTimeLimitMs: number;
	cpuTimeRemainingMs: number;
	wallTimeMs: number;
	bytesWritten: number;
	bytesRead: number;
}

export interface Port {
	port: number;
	address: string;
	state: 'open' | 'closed';
	host?: string;
	hostPort?: number;
	path?: string;
	openedMs: number;
	connections: number;
	accepted: number;
	refused: number;
}

export interface Snapshot {
	id: string;
	snapshotId: string;
	name: string | null;
	sandboxId: string;
	backend: string;
	workdir: string;
	sizeBytes: number;
	createdMs: number;
}

export interface CreateSandboxOptions {
	policy?: Policy | {[key: string]: Json};
	backend?: string;
	name?: string;
	allowDegraded?: boolean;
	ttlMs?: number;
	idleTimeoutMs?: number;
	onExpire?: 'destroy' | 'suspend';
	fromSnapshot?: string;
	fromSnapshotCopy?: boolean;
}

/** An argv array, or a string: a /bin/sh -c line. */
export type Command = string[] | string;

export class Sandbox {
	readonly id: string;
	readonly name: string | null;
	state: string;
	info: SandboxInfo;
	readonly files: Files;
	readonly processes: Processes;
	readonly contexts: Contexts;
	readonly ports: Ports;
	readonly client: Client;
	refresh(): Promise<this>;
	/** Destroys it; one gone already is no error. */
	destroy(): Promise<void>;
	suspend(): Promise<this>;
	resume(): Promise<this>;
	setTimeout(opts: {ttlMs?: number; idleTimeoutMs?: number;
		onExpire?: 'destroy' | 'suspend'}): Promise<this>;
	setNetwork(mode: 'none' | 'allowlist', allow?: string[]): Promise<this>;
	usage(): Promise<Usage>;
	exec(cmd: Command, opts?: ExecOptions): Promise<ExecResult>;
	execStream(cmd: Command, opts?: Omit<ExecOptions, 'onStdout' | 'onStderr'>):
		AsyncGenerator<OutputEvent<ExecResult>, void, undefined>;
	/** Runs code in this sandbox's context of `language`, made on first use and kept. */
	runCode(code: string, opts?: RunOptions & {language?: Language}): Promise<RunResult>;
	snapshot(opts?: {name?: string}): Promise<Snapshot>;
	snapshots(): Promise<Snapshot[]>;
	restore(snapshot: string | Snapshot): Promise<{sandboxId: string; snapshotId: string}>;
	deleteSnapshot(snapshot: string | Snapshot): Promise<void>;
	/** A new sandbox from a snapshot of this one taken now (its policy by default). */
	fork(opts?: CreateSandboxOptions & {snapshotName?: string; copy?: boolean}): Promise<Sandbox>;
}

export class Processes {
	start(cmd: Command, opts?: {env?: Record<string, string>; workdir?: string;
		tty?: boolean; rows?: number; cols?: number; stdin?: boolean}): Promise<Process>;
	list(): Promise<Process[]>;
	get(pid: number): Promise<Process>;
}

export class Contexts {
	create(language?: Language, opts?: {env?: Record<string, string>;
		workdir?: string}): Promise<Context>;
	list(): Promise<Context[]>;
	get(id: string): Promise<Context>;
}

export class Ports {
	open(port: number, opts?: {unix?: boolean}): Promise<Port>;
	list(): Promise<Port[]>;
	close(port: number): Promise<void>;
}

export interface ProcessInfo {
	pid: number;
	argv: string[];
	tty: boolean;
	stdin: boolean;
	state: 'running' | 'exited' | 'killed';
	startedAt: number;
	endedAt: number | null;
	exitCode: number | null;
	signal: string | number | null;
	limitHit: string | null;
	endedBy: string | null;
	[key: string]: unknown;
}

export class Process {
	readonly pid: number;
	readonly sandbox: Sandbox;
	info: ProcessInfo;
	readonly state: ProcessInfo['state'];
	readonly exitCode: number | null;
	refresh(): Promise<this>;
	signal(sig: string | number): Promise<this>;
	kill(): Promise<this>;
	/** Writes to its stdin; resolves with the bytes written. */
	writeStdin(data: Chunk, opts?: {close?: boolean}): Promise<number>;
	closeStdin(): Promise<void>;
	/** What its ring keeps of one stream now, as text. */
	readOutput(stream?: 'stdout' | 'stderr'): Promise<string>;
	output(opts?: {offset?: number; follow?: boolean; stream?: 'stdout' | 'stderr' | 'both';
		signal?: AbortSignal}): AsyncGenerator<OutputEvent<ProcessInfo>, void, undefined>;
	wait(opts?: {onStdout?: OnOutput; onStderr?: OnOutput; signal?: AbortSignal}):
		Promise<ProcessInfo & {stdout: string; stderr: string}>;
}

export type Language = 'python' | 'node' | 'sh' | 'bash';

export interface CellError {
	name: string;
	value: string;
	traceback: string;
}

/** docs/contexts.md#api, camelCase. */
export interface RunResult {
	contextId: string;
	cell: number;
	status: 'ok' | 'error' | 'timeout' | 'killed';
	stdout: string;
	stderr: string;
	/** The final result's text/plain (`"2"` for `1+1`), or null. */
	text: string | null;
	/** The final result's MIME bundle, or null. */
	value: MimeBundle | null;
	/** Every bundle of the cell in order: rich outputs (figures, display()). */
	results: MimeBundle[];
	error: CellError | null;
	exitCode?: number;
	durationMs: number;
	timedOut: boolean;
	outputTruncated: boolean;
	contextAlive: boolean;
}

export interface RunOptions {
	timeoutMs?: number;
	env?: Record<string, string>;
	onStdout?: OnOutput;
	onStderr?: OnOutput;
	onResult?: (bundle: MimeBundle) => void | Promise<void>;
	signal?: AbortSignal;
	/** Throw TimeoutError / CommandFailedError when the cell does not end ok. */
	check?: boolean;
}

export type RunEvent =
	| {type: 'stdout' | 'stderr'; text: string; bytes: Uint8Array}
	| {type: 'result'; result: MimeBundle}
	| {type: 'error'; error: CellError}
	| {type: 'done'; run: RunResult};

export class Context {
	readonly id: string;
	readonly language: Language;
	readonly sandbox: Sandbox;
	state: 'ready' | 'running' | 'gone';
	info: {[key: string]: unknown};
	refresh(): Promise<this>;
	delete(): Promise<void>;
	run(code: string, opts?: RunOptions): Promise<RunResult>;
	runStream(code: string, opts?: {timeoutMs?: number; env?: Record<string, string>;
		signal?: AbortSignal}): AsyncGenerator<RunEvent, void, undefined>;
}

export interface FileStat {
	name: string;
	path?: string;
	type: 'file' | 'dir' | 'symlink' | 'other';
	size: number;
	mode: string;
	mtimeMs: number;
	linkTarget?: string;
}

export type WatchEvent = {
	event: 'watching' | 'create' | 'modify' | 'delete' | 'move' | 'overflow' | 'end';
	path?: string;
	type?: 'file' | 'dir';
	direction?: 'from' | 'to';
	cookie?: number;
	reason?: string;
};

export class Files {
	read(path: string, opts?: {signal?: AbortSignal}): Promise<Uint8Array>;
	readText(path: string, opts?: {signal?: AbortSignal}): Promise<string>;
	write(path: string, data: Chunk, opts?: {parents?: boolean}):
		Promise<{path: string; size: number}>;
	list(path?: string): Promise<{path: string; entries: FileStat[]; truncated: boolean}>;
	stat(path: string): Promise<FileStat>;
	exists(path: string): Promise<boolean>;
	mkdir(path: string, opts?: {parents?: boolean}): Promise<{path: string}>;
	remove(path: string, opts?: {recursive?: boolean}): Promise<{path: string}>;
	rename(from: string, to: string, opts?: {noreplace?: boolean}):
		Promise<{path: string; to: string}>;
	chmod(path: string, mode: string | number): Promise<{path: string}>;
	uploadTar(dir: string, tar: Uint8Array | NodeJS.ReadableStream | AsyncIterable<Uint8Array>):
		Promise<{path: string; entries: number; bytes: number}>;
	/** A local directory's contents into `remoteDir`, as one tar. */
	uploadDir(localDir: string, remoteDir: string):
		Promise<{path: string; entries: number; bytes: number}>;
	/** `remoteDir` into a local directory: the paths written. Never writes out of it nor
	 * through a symlink; a link pointing out of it is refused. */
	downloadDir(remoteDir: string, localDir: string): Promise<string[]>;
	downloadTar(dir: string, opts?: {signal?: AbortSignal}): Promise<Uint8Array>;
	downloadTarStream(dir: string, opts?: {signal?: AbortSignal}): Promise<IncomingMessage>;
	watch(dir?: string, opts?: {signal?: AbortSignal}): AsyncGenerator<WatchEvent, void, undefined>;
}

export interface AuditRecord {
	seq: number;
	tsMs: number;
	clientUid: number;
	client: string;
	action: string;
	sandboxId: string | null;
	argv: Json;
	policyDigest: string | null;
	backend: string | null;
	result: string;
	durationMs: number;
	count: number;
	firstMs: number;
	lastMs: number;
	hash: string;
}

export class Session {
	readonly agentId: string;
	readonly id: string;
	readonly sandboxId: string;
	info: {[key: string]: unknown};
	execute(code: string, opts?: {language?: Language; timeoutMs?: number;
		env?: Record<string, string>}): Promise<{[key: string]: any}>;
	executions(): Promise<Array<{[key: string]: any}>>;
	destroy(): Promise<void>;
}

export class Client {
	constructor(opts?: ClientOptions);
	close(): void;
	health(): Promise<{status: 'ok' | 'draining'; version: string; [key: string]: unknown}>;
	metrics(): Promise<string>;
	backends(): Promise<Array<{name: string; available: boolean; [key: string]: unknown}>>;
	backend(name: string): Promise<{name: string; available: boolean; [key: string]: unknown}>;
	create(opts?: CreateSandboxOptions): Promise<Sandbox>;
	get(idOrName: string): Promise<Sandbox>;
	list(filters?: {labels?: Record<string, string>; state?: string;
		backend?: string; name?: string}): Promise<Sandbox[]>;
	snapshots(): Promise<Snapshot[]>;
	snapshot(snapshot: string): Promise<Snapshot>;
	deleteSnapshot(snapshot: string | Snapshot): Promise<void>;
	audit(opts?: {since?: number | string | Date}): Promise<AuditRecord[]>;
	auditVerify(): Promise<{ok: boolean; records: number; [key: string]: unknown}>;
	session(agent: string, policy?: Policy | {[key: string]: Json},
		opts?: {backend?: string; allowDegraded?: boolean}): Promise<Session>;
}
