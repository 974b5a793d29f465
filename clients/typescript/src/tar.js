// tar.js: directories to and from the files API's tar (ustar with pax names), for
// Files.uploadDir / downloadDir. Nothing here follows a symlink: a local tree is walked with
// lstat, and an archive from the daemon (whose names and links the sandbox chose) is
// written only beneath the target directory, never through a symlink in the way.
import fs from 'node:fs';
import path from 'node:path';

const BLOCK = 512;

function octal(n, width) {
	return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name, {mode, size = 0, mtime, type, linkname = ''}) {
	const h = Buffer.alloc(BLOCK);
	h.write(name.slice(0, 100), 0, 'utf8');
	h.write(octal(mode & 0o7777, 8), 100);
	h.write(octal(0, 8), 108);
	h.write(octal(0, 8), 116);
	h.write(octal(size, 12), 124);
	h.write(octal(Math.floor(mtime), 12), 136);
	h.write('        ', 148);
	h.write(type, 156);
	h.write(linkname.slice(0, 100), 157, 'utf8');
	h.write('ustar\0' + '00', 257);
	let sum = 0;
	for (const b of h)
		sum += b;
	h.write(octal(sum, 7) + ' ', 148);
	return h;
}

function pad(buf) {
	const rest = buf.length % BLOCK;
	return rest ? [buf, Buffer.alloc(BLOCK - rest)] : [buf];
}

/** A pax header carrying `path` / `linkpath` that do not fit ustar's 100 bytes. */
function paxFor(name, linkname) {
	const recs = [];
	for (const [k, v] of [['path', name], ['linkpath', linkname]]) {
		if (!v || Buffer.byteLength(v) < 100)
			continue;
		const body = ` ${k}=${v}\n`;
		let len = Buffer.byteLength(body);
		len += String(len + String(len).length).length;
		recs.push(`${len}${body}`);
	}
	if (!recs.length)
		return [];
	const data = Buffer.from(recs.join(''));
	return [header('pax', {mode: 0o644, size: data.length, mtime: 0, type: 'x'}), ...pad(data)];
}

/** The tar of a local directory's contents (regular files, directories, symlinks as
 * links; other kinds left out), names relative to it. */
export function tarOfDir(dir) {
	const out = [];
	const walk = (rel) => {
		for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
			const r = rel ? `${rel}/${name}` : name;
			const full = path.join(dir, r);
			const st = fs.lstatSync(full);
			const meta = {mode: st.mode, mtime: st.mtimeMs / 1000};
			if (st.isDirectory()) {
				out.push(...paxFor(r + '/'), header(r + '/', {...meta, type: '5'}));
				walk(r);
			} else if (st.isSymbolicLink()) {
				const linkname = fs.readlinkSync(full);
				out.push(...paxFor(r, linkname), header(r, {...meta, type: '2', linkname}));
			} else if (st.isFile()) {
				const data = fs.readFileSync(full);
				out.push(...paxFor(r), header(r, {...meta, size: data.length, type: '0'}),
					...pad(data));
			}
		}
	};
	walk('');
	out.push(Buffer.alloc(2 * BLOCK));
	return Buffer.concat(out);
}

function cstr(buf, start, len) {
	const s = buf.subarray(start, start + len);
	const nul = s.indexOf(0);
	return s.subarray(0, nul < 0 ? s.length : nul).toString('utf8');
}

/** The entries of a tar: `{name, type, mode, linkname, data}`; pax and GNU long names
 * applied. Throws on a truncated archive. */
export function* tarEntries(buf) {
	let pax = {}, longName = null, longLink = null;
	for (let off = 0; off + BLOCK <= buf.length;) {
		const h = buf.subarray(off, off + BLOCK);
		if (h.every((b) => b === 0))
			return;
		const size = parseInt(cstr(h, 124, 12).trim() || '0', 8);
		const type = String.fromCharCode(h[156] || 48);
		const data = buf.subarray(off + BLOCK, off + BLOCK + size);
		if (data.length < size)
			throw new Error('tar: truncated archive');
		off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
		if (type === 'x') {
			for (const rec of data.toString('utf8').split('\n')) {
				const m = /^\d+ ([^=]+)=(.*)$/s.exec(rec);
				if (m)
					pax[m[1]] = m[2];
			}
			continue;
		}
		if (type === 'L' || type === 'K') {
			(type === 'L') ? (longName = cstr(data, 0, size)) : (longLink = cstr(data, 0, size));
			continue;
		}
		if (type === 'g')
			continue;
		const prefix = cstr(h, 345, 155);
		const name = pax.path ?? longName ?? (prefix ? `${prefix}/` : '') + cstr(h, 0, 100);
		const linkname = pax.linkpath ?? longLink ?? cstr(h, 157, 100);
		yield {name, type, mode: parseInt(cstr(h, 100, 8).trim() || '644', 8), linkname, data};
		pax = {};
		longName = longLink = null;
	}
}

function notADirectory(e, part, st) {
	return new Error(`tar entry ${JSON.stringify(e.name)}: ${part} is ` +
		`${st.isSymbolicLink() ? 'a symbolic link (never followed)' : 'not a directory'}`);
}

/** Writes a tar's entries beneath `dest` (made if missing): directories, regular files,
 * symlinks whose target stays beneath `dest`. A name that is absolute or has a `..`, a
 * symlink (an earlier entry's or one already there) where a directory is needed or where a
 * file is written, an escaping link: an error naming the entry (nothing is written through
 * a link). Returns the paths written, relative to `dest`. */
export function extractTar(buf, dest) {
	fs.mkdirSync(dest, {recursive: true});
	const written = [];
	for (const e of tarEntries(buf)) {
		const parts = e.name.split('/').filter((p) => p && p !== '.');
		if (!parts.length)
			continue;
		if (e.name.startsWith('/') || parts.includes('..'))
			throw new Error(`tar entry ${JSON.stringify(e.name)}: a name outside the directory`);
		let at = dest;
		for (const p of parts.slice(0, -1)) {
			at = path.join(at, p);
			let st = null;
			try {
				st = fs.lstatSync(at);
			} catch {
				fs.mkdirSync(at, 0o755);
				continue;
			}
			if (!st.isDirectory())
				throw notADirectory(e, p, st);
		}
		const target = path.join(at, parts.at(-1));
		let st = null;
		try {
			st = fs.lstatSync(target);
		} catch { /* absent */ }
		const rel = parts.join('/');
		if (e.type === '5') {
			if (st && !st.isDirectory())
				throw notADirectory(e, parts.at(-1), st);
			if (!st)
				fs.mkdirSync(target, e.mode & 0o777);
		} else if (e.type === '0' || e.type === '7') {
			if (st && !st.isFile())
				throw new Error(`tar entry ${JSON.stringify(e.name)}: ` +
					`${st.isSymbolicLink() ? 'a symbolic link (never written through)' : 'not a file'} here`);
			const fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT |
				fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, e.mode & 0o777);
			try {
				fs.writeSync(fd, e.data);
			} finally {
				fs.closeSync(fd);
			}
		} else if (e.type === '2') {
			const resolved = path.resolve(path.dirname(target), e.linkname);
			if (path.isAbsolute(e.linkname) ||
			    !(resolved + '/').startsWith(path.resolve(dest) + '/'))
				throw new Error(`tar entry ${JSON.stringify(e.name)}: a link out of the ` +
					`directory (${e.linkname})`);
			if (st)
				throw new Error(`tar entry ${JSON.stringify(e.name)}: exists already`);
			fs.symlinkSync(e.linkname, target);
		} else {
			continue; // hard links, devices, fifos: the daemon never sends them
		}
		written.push(rel);
	}
	return written;
}
