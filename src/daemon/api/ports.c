/* api/ports.c: /v1/sandboxes/{id}/ports — forward a port of the sandbox to the host, list
 * its forwards, close one (docs/api.md#ports). The listeners and relays are live/ports.c's. */
#include "daemon/api/api.h"

void api_ports(struct daemon *d, struct api_request *r, const struct client *c,
	       struct reply *out)
{
	struct live *l = api_live_or_reply(d, r->id, out); /* 404 unknown, 409 gone */
	if (!l)
		return;
	agentd_error err = {0};
	json_t *j = NULL;
	int status;
	switch (r->route) {
	case ROUTE_PORT_OPEN:
		status = ports_open(d, l, c, r->port, r->port_unix, &j, &err);
		if (status)
			reply_agentd_error(out, status, &err);
		else
			reply_json(out, 201, j);
		break;
	case ROUTE_PORT_LIST:
		reply_json(out, 200, json_pack("{s:s, s:o}", "sandbox_id", l->id, "ports",
					       ports_list_json(d, l)));
		break;
	default:
		if ((status = ports_close(d, l, c, r->port, &err)))
			reply_agentd_error(out, status, &err);
		else
			reply_json(out, 200, json_pack("{s:s, s:i, s:s}", "sandbox_id", l->id,
						       "port", (int)r->port, "state", "closed"));
	}
	live_put(d, l);
}
