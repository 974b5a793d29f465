// streams.js: the daemon's NDJSON streams, and text decoded across chunks.
import {errorFromStream} from './errors.js';
import {asAbort} from './transport.js';

/** The JSON objects of an NDJSON response, one per line, however the bytes arrive (a line
 * may span chunks, a chunk hold many lines). Leaving the loop early closes the response,
 * which the daemon takes as a cancel (an exec's command is killed). */
export async function* ndjsonLines(res) {
	let buf = Buffer.alloc(0);
	try {
		for await (const chunk of res) {
			buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
			let start = 0;
			for (let nl; (nl = buf.indexOf(10, start)) >= 0; start = nl + 1)
				if (nl > start)
					yield JSON.parse(buf.toString('utf8', start, nl));
			buf = buf.subarray(start);
		}
		if (buf.length)
			yield JSON.parse(buf.toString('utf8'));
	} catch (e) {
		throw asAbort(res, e);
	} finally {
		if (!res.readableEnded)
			res.destroy();
	}
}

/** The bytes of a chunk line: `data` as text, or base64 with `"encoding": "base64"`. */
export function chunkBytes(line) {
	return line.encoding === 'base64' ? new Uint8Array(Buffer.from(line.data, 'base64'))
		: new Uint8Array(Buffer.from(line.data, 'utf8'));
}

/** One incremental UTF-8 decoder per stream: a character whose bytes arrive in two chunks
 * (a base64 chunk ending inside it, the rest in the next) comes out whole, once. */
export class StreamDecoder {
	constructor() {
		this.decoders = new Map();
	}

	/** The text a chunk completes (possibly ''), and its bytes. */
	push(stream, bytes) {
		let d = this.decoders.get(stream);
		if (!d) {
			d = new TextDecoder('utf-8');
			this.decoders.set(stream, d);
		}
		return d.decode(bytes, {stream: true});
	}

	/** What is still held per stream at the end (an incomplete character: U+FFFD). */
	*flush() {
		for (const [stream, d] of this.decoders) {
			const text = d.decode();
			if (text)
				yield [stream, text];
		}
	}
}

/** Events of an exec or process-output stream: `{type: "stdout"|"stderr", text, bytes,
 * offset?}`, `{type: "dropped", stream, offset, dropped}`, last `{type: "exit", exit}`.
 * A line `{"error": ...}` throws the daemon's error. */
export async function* outputEvents(res, finish) {
	const dec = new StreamDecoder();
	for await (const line of ndjsonLines(res)) {
		if (line.error)
			throw errorFromStream(line.error);
		if (line.exit) {
			for (const [stream, text] of dec.flush())
				yield {type: stream, text, bytes: new Uint8Array(0)};
			yield {type: 'exit', exit: finish(line.exit)};
			continue;
		}
		if (line.dropped !== undefined) {
			yield {type: 'dropped', stream: line.stream, offset: line.offset,
			       dropped: line.dropped};
			continue;
		}
		if (line.stream) {
			const bytes = chunkBytes(line);
			const ev = {type: line.stream, text: dec.push(line.stream, bytes), bytes};
			if (line.offset !== undefined)
				ev.offset = line.offset;
			yield ev;
		}
	}
	for (const [stream, text] of dec.flush())
		yield {type: stream, text, bytes: new Uint8Array(0)};
}

const MAP_VALUED = new Set(['labels', 'spec', 'environment', 'env', 'result', 'results',
	'cannot_enforce', 'argv', 'value']);

/** The daemon's object with camelCase keys (`exit_code` -> `exitCode`); the values of keys
 * that hold data (labels, spec, MIME bundles, argv...) are left as they are. */
export function camelize(v) {
	if (Array.isArray(v))
		return v.map(camelize);
	if (!v || typeof v !== 'object')
		return v;
	const out = {};
	for (const [k, x] of Object.entries(v))
		out[k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())] =
			MAP_VALUED.has(k) ? x : camelize(x);
	return out;
}
