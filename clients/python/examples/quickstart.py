from agentd import Client, Policy

with Client() as client:  # the daemon at $AGENTD_SOCKET (else /run/agentd/agentd.sock)
    with client.create(Policy("standard").memory_mib(256), ttl=600) as sb:
        r = sb.exec(["python3", "-c", "print(6 * 7)"])
        print(r.exit_code, r.stdout.strip())  # 0 42
        sb.exec("for i in 1 2 3; do echo $i; done", on_stdout=lambda t: print(t, end=""))
        print(sb.run_code("x = 41\nx + 1").text)  # 42: a context keeps its state
        sb.files.write("notes/hello.txt", "hi", parents=True)
