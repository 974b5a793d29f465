/* egress.h: network "allowlist" of a micro-VM (issue 15: vm-map): the guest's streams into
 * agentd's egress proxy (egress.c). */
#ifndef AGENTD_MICROVM_EGRESS_H
#define AGENTD_MICROVM_EGRESS_H

#include "lib/backends/microvm/microvm.h"

struct vm_egress;
/* Serve the VM's sandbox id through proxy with allow (a sandbox without a listener), and
 * accept the guest's streams on ch (vm_chan_set_opener): each one a connection of id. NULL
 * + err when the proxy refuses the list. */
struct vm_egress *vm_egress_start(struct vm_chan *ch, agentd_proxy *proxy, const char *id,
				  const agentd_strv *allow, agentd_error *err);
/* The sandbox's connections closed (logged by the proxy), the pump stopped, every stream
 * freed. After vm_chan_free (its channels' callbacks point here). Safe on NULL. */
void vm_egress_stop(struct vm_egress *eg);

#endif
