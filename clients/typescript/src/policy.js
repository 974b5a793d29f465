// policy.js: a builder for the policy a sandbox runs (docs/policy.md); toJSON() is the
// `spec` of POST /v1/sandboxes. Only what is set is sent: the profile gives the rest.

export class Policy {
	/** @param {'strict'|'standard'|'permissive'} [profile] */
	constructor(profile) {
		this.spec = {};
		if (profile)
			this.spec.profile = profile;
	}

	static strict() { return new Policy('strict'); }
	static standard() { return new Policy('standard'); }
	static permissive() { return new Policy('permissive'); }

	/** A policy from its JSON object (a copy). */
	static from(spec) {
		const p = new Policy();
		p.spec = structuredClone(spec);
		return p;
	}

	profile(name) { this.spec.profile = name; return this; }
	workdir(path) { this.spec.workdir = path; return this; }
	readOnly(...paths) { return this.#push('allowed_paths_ro', paths); }
	readWrite(...paths) { return this.#push('allowed_paths_rw', paths); }
	bindMount(source, target, {readonly = true} = {}) {
		return this.#push('bind_mounts', [{source, target, readonly}]);
	}

	/** `none`, `host`, or `allowlist` with its entries (`pypi.org:443`, `*.github.com`,
	 * `10.0.0.0/8:5432`...). */
	network(mode, allow) {
		this.spec.network = {mode};
		if (allow)
			this.spec.network.allow = [...allow];
		return this;
	}

	/** Adds allowlist entries (and switches the network to `allowlist`). */
	allow(...entries) {
		const n = this.spec.network?.mode === 'allowlist' ? this.spec.network
			: (this.spec.network = {mode: 'allowlist', allow: []});
		n.allow = [...(n.allow ?? []), ...entries];
		return this;
	}

	env(name, value) {
		this.spec.environment = {...this.spec.environment, [name]: value};
		return this;
	}
	environment(vars) {
		this.spec.environment = {...this.spec.environment, ...vars};
		return this;
	}
	label(key, value) {
		this.spec.labels = {...this.spec.labels, [key]: value};
		return this;
	}
	labels(map) {
		this.spec.labels = {...this.spec.labels, ...map};
		return this;
	}

	/** Any `limits.*` key of docs/policy.md, by its JSON name. */
	limit(key, value) {
		this.spec.limits = {...this.spec.limits, [key]: value};
		return this;
	}
	memory(bytes) { return this.limit('max_memory_bytes', bytes); }
	cpuTime(ms) { return this.limit('max_cpu_time_ms', ms); }
	wallTime(ms) { return this.limit('max_wall_time_ms', ms); }
	processes(n) { return this.limit('max_processes', n); }
	openFiles(n) { return this.limit('max_open_files', n); }
	outputBytes(n) { return this.limit('max_output_bytes', n); }
	writeBytes(n) { return this.limit('max_write_bytes', n); }
	snapshotBytes(n) { return this.limit('max_snapshot_bytes', n); }
	processOutputBytes(n) { return this.limit('max_process_output_bytes', n); }
	cpuWeight(n) { return this.limit('cpu_weight', n); }
	cpuQuotaPct(n) { return this.limit('cpu_quota_pct', n); }

	/** `default`, `none`, or an absolute path to an OCI seccomp JSON file. */
	seccomp(profile) { this.spec.seccomp_profile = profile; return this; }
	runAs(uid, gid) { this.spec.run_as = {uid, gid}; return this; }

	toJSON() {
		return structuredClone(this.spec);
	}

	#push(key, items) {
		this.spec[key] = [...(this.spec[key] ?? []), ...items];
		return this;
	}
}
