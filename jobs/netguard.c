/* netguard.c: see netguard.h.
 *
 * Every address is reduced to its IPv4 form when it carries one, then
 * matched against the allow-list first (an operator's explicit allowance
 * wins), then against the table of refused ranges. */
#include "netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct range {
    int family;
    unsigned char addr[16];
    int prefix;
    const char *why;
} range;

/* Most specific first: the first match names the reason. */
static const range refused[] = {
    { AF_INET, { 169, 254, 169, 254 }, 32, "cloud metadata" },
    { AF_INET, { 0 }, 8, "unspecified" },
    { AF_INET, { 127 }, 8, "loopback" },
    { AF_INET, { 10 }, 8, "private" },
    { AF_INET, { 172, 16 }, 12, "private" },
    { AF_INET, { 192, 168 }, 16, "private" },
    { AF_INET, { 100, 64 }, 10, "private (shared address space)" },
    { AF_INET, { 169, 254 }, 16, "link-local" },
    { AF_INET, { 192, 0, 0 }, 24, "reserved" },
    { AF_INET, { 198, 18 }, 15, "reserved (benchmarking)" },
    { AF_INET, { 224 }, 4, "multicast" },
    { AF_INET, { 240 }, 4, "reserved" },
    { AF_INET6, { 0xfd, 0x00, 0x0e, 0xc2, [15] = 0x54, [14] = 0x02 }, 128, "cloud metadata" },
    { AF_INET6, { 0 }, 128, "unspecified" },
    { AF_INET6, { [15] = 1 }, 128, "loopback" },
    { AF_INET6, { 0xfc }, 7, "private (unique local)" },
    { AF_INET6, { 0xfe, 0x80 }, 10, "link-local" },
    { AF_INET6, { 0xfe, 0xc0 }, 10, "private (site-local)" },
    { AF_INET6, { 0xff }, 8, "multicast" },
    { AF_INET6, { 0x01, 0x00 }, 64, "reserved (discard)" },
};

static bool in_prefix(const unsigned char *a, const unsigned char *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

/* Reduces sa to (family, bytes): IPv6 forms that carry an IPv4 address
 * become that IPv4 address.  False for families other than IPv4/IPv6. */
static bool normalise(const struct sockaddr *sa, int *family, unsigned char out[16])
{
    memset(out, 0, 16);
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        *family = AF_INET;
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const unsigned char *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
    static const unsigned char compat[12] = { 0 };
    static const unsigned char nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 ||
        (memcmp(a, compat, 12) == 0 && (a[12] | a[13] | a[14]) != 0)) {
        memcpy(out, a + 12, 4);   /* ::ffff:a.b.c.d, 64:ff9b::a.b.c.d, ::a.b.c.d */
        *family = AF_INET;
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {   /* 6to4: 2002:AABB:CCDD::/48 */
        memcpy(out, a + 2, 4);
        *family = AF_INET;
        return true;
    }
    memcpy(out, a, 16);
    *family = AF_INET6;
    return true;
}

const char *sl_netguard_refusal(const struct sockaddr *sa, const sl_cidr *allow, size_t nallow)
{
    int family;
    unsigned char a[16];
    if (!normalise(sa, &family, a))
        return "not an IP address";
    for (size_t i = 0; i < nallow; i++) {
        if (allow[i].family == family && in_prefix(a, allow[i].addr, allow[i].prefix))
            return NULL;
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (refused[i].family == family && in_prefix(a, refused[i].addr, refused[i].prefix))
            return refused[i].why;
    }
    return NULL;
}

bool sl_netguard_port_allowed(int port, const int *ports, size_t nports)
{
    for (size_t i = 0; i < nports; i++) {
        if (ports[i] == port)
            return true;
    }
    return false;
}

const char *sl_netguard_addr_text(const struct sockaddr *sa, char *buf, size_t n)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        inet_ntop(sa->sa_family, a, buf, (socklen_t)n) == NULL)
        snprintf(buf, n, "(family %d)", (int)sa->sa_family);
    return buf;
}
