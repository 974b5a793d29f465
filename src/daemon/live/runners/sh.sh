# sh.sh: agentd's runner for sh and bash code contexts (docs/contexts.md), run by the
# sandbox's own shell as `SHELL -c SRC SHELL SRC`. POSIX sh plus head, cat, wc, mktemp and
# env. Cells run in one long-lived shell, the kernel (`SHELL -c SRC SHELL kernel`), so
# variables, functions and the working directory persist. This first process only forwards
# the host's SIGINT to its process group: a shell runs its trap only once its foreground
# command has ended, so the signal must reach the cell's commands themselves.

_agentd_frame() { # KIND ID FILE: one frame per 65536 bytes of FILE
	exec 7<"$3"
	while :; do
		head -c 65536 <&7 >"$_agentd_dir/chunk"
		_agentd_n=$(wc -c <"$_agentd_dir/chunk")
		[ "$_agentd_n" -gt 0 ] || break
		printf '%s %s %s\n' "$1" "$2" $_agentd_n >&4
		cat "$_agentd_dir/chunk" >&4
	done
	exec 7<&-
}

_agentd_send() { # KIND ID TEXT
	printf '%s %s %s\n%s' "$1" "$2" ${#3} "$3" >&4
}

_agentd_kernel() {
	trap '_agentd_intr=1' INT
	_agentd_restore=
	while IFS=' ' read -r _agentd_kind _agentd_id _agentd_len <&3; do
		_agentd_payload=$(head -c "$_agentd_len" <&3; printf x)
		_agentd_payload=${_agentd_payload%x}
		case $_agentd_kind in
		env)
			_agentd_name=${_agentd_payload%%=*}
			if eval "[ -n \"\${$_agentd_name+x}\" ]"; then
				eval "_agentd_old_$_agentd_name=\$$_agentd_name"
				_agentd_restore="$_agentd_restore s:$_agentd_name"
			else
				_agentd_restore="$_agentd_restore u:$_agentd_name"
			fi
			export "$_agentd_payload"
			;;
		run)
			_agentd_intr=
			printf %s "$_agentd_id" >"$_agentd_dir/cell"
			eval "$_agentd_payload" >"$_agentd_dir/out" 2>"$_agentd_dir/err" </dev/null 3<&- 4>&-
			_agentd_status=$?
			for _agentd_v in $_agentd_restore; do
				case $_agentd_v in
				s:*) eval "export ${_agentd_v#s:}=\"\$_agentd_old_${_agentd_v#s:}\"" ;;
				u:*) unset "${_agentd_v#u:}" ;;
				esac
			done
			_agentd_restore=
			_agentd_frame out "$_agentd_id" "$_agentd_dir/out"
			_agentd_frame err "$_agentd_id" "$_agentd_dir/err"
			rm -f "$_agentd_dir/cell"
			if [ -n "$_agentd_intr" ]; then _agentd_st=error; else _agentd_st=ok; fi
			_agentd_send done "$_agentd_id" "{\"status\":\"$_agentd_st\",\"exit_code\":$_agentd_status}"
			;;
		esac
	done
}

if [ "$1" != kernel ]; then
	exec 4>&1 5<&0 </dev/null # an async command's stdin would be /dev/null
	_agentd_dir=$(mktemp -d "${TMPDIR:-/tmp}/agentd-ctx.XXXXXX") || exit 1
	# The kernel starts with SIGINT at its default (an async command of a shell without
	# job control would ignore it, and so would every command of its cells).
	if env --default-signal=INT true 2>/dev/null; then
		env --default-signal=INT "$0" -c "$1" "$0" kernel "$_agentd_dir" <&5 5<&- &
	else
		"$0" -c "$1" "$0" kernel "$_agentd_dir" <&5 5<&- &
	fi
	_agentd_k=$!
	exec 5<&-
	_agentd_forward() {
		trap '' INT
		kill -INT 0
		trap _agentd_forward INT
	}
	trap _agentd_forward INT
	_agentd_send hello 0 "{\"language\":\"sh\",\"pid\":$$}"
	while :; do
		wait $_agentd_k
		_agentd_rc=$?
		kill -0 $_agentd_k 2>/dev/null || break
	done
	# The kernel exited (a cell ran `exit`): that cell's output and status go out.
	if [ -f "$_agentd_dir/cell" ]; then
		_agentd_id=$(cat "$_agentd_dir/cell")
		_agentd_frame out "$_agentd_id" "$_agentd_dir/out"
		_agentd_frame err "$_agentd_id" "$_agentd_dir/err"
		_agentd_st=ok
		[ "$_agentd_rc" -eq 0 ] || _agentd_st=error
		_agentd_send done "$_agentd_id" \
			"{\"status\":\"$_agentd_st\",\"exit_code\":$_agentd_rc,\"exited\":true}"
	fi
	rm -rf "$_agentd_dir"
	exit $_agentd_rc
fi

exec 3<&0 4>&1 </dev/null
_agentd_dir=$2
_agentd_kernel
