/* netguard.h: which network addresses a job may make sluice connect to.
 *
 * A URL from a job names a host; what matters is the address a connection
 * actually reaches.  The importer asks here about every socket libcurl
 * opens (its open-socket callback), after name resolution, for every
 * redirect hop and every address tried, so neither a host name that
 * resolves to an internal address nor a DNS answer that changes between
 * a check and the connection (rebinding) reaches one.
 *
 * Refused unless a range of the operator's allow-list covers the address:
 * unspecified, loopback, private (RFC 1918, shared 100.64/10, ULA
 * fc00::/7), link-local (169.254/16, fe80::/10), cloud metadata
 * (169.254.169.254, fd00:ec2::254), multicast, reserved and benchmarking
 * ranges; IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible, NAT64 (64:ff9b::/96)
 * and 6to4 (2002::/16) addresses are judged by the IPv4 address they carry. */
#ifndef SL_NETGUARD_H
#define SL_NETGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config_jobs.h"

/* Why the address sa may not be connected to ("loopback", "private", ...),
 * or NULL when it may: a public address, or one inside a range of allow. */
const char *sl_netguard_refusal(const struct sockaddr *sa, const sl_cidr *allow, size_t nallow);

/* True when port is listed in ports. */
bool sl_netguard_port_allowed(int port, const int *ports, size_t nports);

/* Writes the numeric address of sa into buf (at least 64 bytes); returns buf. */
const char *sl_netguard_addr_text(const struct sockaddr *sa, char *buf, size_t n);

#endif
