/* redis_cluster.c: see redis_cluster.h.
 *
 * State: nodes[] (every node heard of: the seeds, then the masters of the
 * map; a connection each, opened on first use), slots[] (the node index
 * serving each slot, -1 when unknown), pend[] (commands appended and not
 * yet sent, copied, since a redirection sends them again) and ready[]
 * (replies of the last batch not yet handed back).
 *
 * A batch is cut into groups: one command, or a MULTI … EXEC block.  All
 * groups are appended to their nodes' connections, every connection is
 * flushed, then the replies are read group by group, in the caller's order
 * (each connection answers in the order it was written to).  A group
 * answered by a redirection is then sent again on its own, synchronously:
 * redirections are rare (a resharding, a failover), and doing them one at
 * a time keeps the code simple. */
#include "redis_cluster.h"
#include "mem.h"
#include "redis_slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_REDIRECTS 16   /* per group: a slot moving twice is already rare */
#define RETRY_PAUSE_MS 100 /* after TRYAGAIN / CLUSTERDOWN */

typedef struct node {
    char *host;     /* owned */
    int port;
    sl_rconn *conn; /* owned, NULL until first used */
} node;

typedef struct pcmd {
    int argc;
    char **argv;    /* owned copies */
    size_t *lens;   /* owned */
    int slot;       /* -1: no key */
} pcmd;

struct sl_rcluster {
    char *user, *password;   /* owned, NULL when none */
    int timeout_ms;
    node *nodes;             /* owned */
    size_t nnodes, capnodes;
    int16_t slots[SL_REDIS_SLOTS];
    bool stale;              /* a MOVED was seen: read the map before the next batch */
    bool broken;
    pcmd *pend;              /* owned: appended, not yet sent */
    size_t npend, cappend;
    int block_slot;          /* slot of the open MULTI block, -1: none yet */
    bool in_block;           /* a MULTI was appended without its EXEC */
    redisReply **ready;      /* owned: replies not yet handed back */
    size_t nready, readyhead, capready;
    int block_ms;            /* of the batch being run */
    long moved, asked;       /* redirections followed, for tests */
};

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int find_node(sl_rcluster *cl, const char *host, int port)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].port == port && strcmp(cl->nodes[i].host, host) == 0)
            return (int)i;
    if (cl->nnodes == cl->capnodes) {
        cl->capnodes = cl->capnodes ? 2 * cl->capnodes : 8;
        cl->nodes = sl_xrealloc(cl->nodes, cl->capnodes * sizeof *cl->nodes);
    }
    cl->nodes[cl->nnodes] = (node){ .host = sl_xstrdup(host), .port = port };
    return (int)cl->nnodes++;
}

/* The node's connection, opened if need be; NULL with err (broken). */
static sl_rconn *node_conn(sl_rcluster *cl, int i, sl_err *err)
{
    node *n = &cl->nodes[i];
    if (n->conn && sl_rconn_broken(n->conn)) {
        sl_rconn_free(n->conn);
        n->conn = NULL;
    }
    if (n->conn == NULL) {
        sl_rconn_addr a = { .host = n->host, .port = n->port, .user = cl->user,
                            .password = cl->password, .timeout_ms = cl->timeout_ms };
        n->conn = sl_rconn_open(&a, err);
    }
    return n->conn;
}

static void fail(sl_rcluster *cl)
{
    cl->broken = true;
}

/* ---- the slot map ------------------------------------------------------- */

/* Reads CLUSTER SLOTS from node i into a fresh map.  -1 with err. */
static int read_map_from(sl_rcluster *cl, int i, sl_err *err)
{
    sl_rconn *c = node_conn(cl, i, err);
    if (c == NULL)
        return -1;
    const char *argv[] = { "CLUSTER", "SLOTS" };
    redisReply *rep = sl_rconn_command(c, 2, argv, NULL, err);
    if (rep == NULL)
        return -1;
    int rc = -1;
    int16_t map[SL_REDIS_SLOTS];
    for (size_t s = 0; s < SL_REDIS_SLOTS; s++)
        map[s] = -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        sl_err_set(err, SL_EREDIS, "redis %s: CLUSTER SLOTS: no slot is served",
                   sl_rconn_address(c));
        goto cleanup;
    }
    for (size_t r = 0; r < rep->elements; r++) {
        const redisReply *e = rep->element[r];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            sl_err_set(err, SL_EREDIS, "redis %s: CLUSTER SLOTS: unexpected reply",
                       sl_rconn_address(c));
            goto cleanup;
        }
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        const char *host = e->element[2]->element[0]->str;
        long long port = e->element[2]->element[1]->integer;
        if (from < 0 || to >= SL_REDIS_SLOTS || from > to || port < 1 || port > 65535) {
            sl_err_set(err, SL_EREDIS, "redis %s: CLUSTER SLOTS: bad range or port",
                       sl_rconn_address(c));
            goto cleanup;
        }
        /* An empty or unknown endpoint means "the address you reached me at". */
        if (host[0] == '\0' || strcmp(host, "?") == 0)
            host = cl->nodes[i].host;
        int n = find_node(cl, host, (int)port);
        for (long long s = from; s <= to; s++)
            map[s] = (int16_t)n;
    }
    memcpy(cl->slots, map, sizeof map);
    cl->stale = false;
    rc = 0;
cleanup:
    freeReplyObject(rep);
    return rc;
}

/* Reads the map from the first node that answers (masters first, since
 * they are the ones known to be in the cluster).  -1 with err. */
static int read_map(sl_rcluster *cl, sl_err *err)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (read_map_from(cl, (int)i, err) == 0)
            return 0;
    return -1;
}

/* Node index for a redirection target "host:port" (IPv6 hosts have colons:
 * the port follows the last one). */
static int node_of_target(sl_rcluster *cl, const char *target)
{
    const char *colon = strrchr(target, ':');
    if (colon == NULL)
        return -1;
    long port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535)
        return -1;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - target), target);
    return find_node(cl, host, (int)port);
}

/* Node for a slot (-1: any node, the first of the map). */
static int node_of_slot(const sl_rcluster *cl, int slot)
{
    if (slot >= 0 && cl->slots[slot] >= 0)
        return cl->slots[slot];
    for (size_t s = 0; s < SL_REDIS_SLOTS; s++)
        if (cl->slots[s] >= 0)
            return cl->slots[s];
    return 0;
}

/* ---- life ------------------------------------------------------------------ */

sl_rcluster *sl_rcluster_open(const sl_rconn_addr *seeds, size_t nseeds, sl_err *err)
{
    sl_rcluster *cl = sl_xcalloc(1, sizeof *cl);
    cl->user = sl_xstrdup(seeds[0].user);
    cl->password = sl_xstrdup(seeds[0].password);
    cl->timeout_ms = seeds[0].timeout_ms > 0 ? seeds[0].timeout_ms : 5000;
    cl->block_slot = -1;
    for (size_t s = 0; s < SL_REDIS_SLOTS; s++)
        cl->slots[s] = -1;
    for (size_t i = 0; i < nseeds; i++)
        find_node(cl, seeds[i].host, seeds[i].port);
    if (read_map(cl, err) < 0) {
        sl_err_wrap(err, "redis cluster: no seed answered CLUSTER SLOTS (last error)");
        sl_rcluster_free(cl);
        return NULL;
    }
    return cl;
}

static void pcmd_clear(pcmd *p)
{
    for (int i = 0; i < p->argc; i++)
        free(p->argv[i]);
    free(p->argv);
    free(p->lens);
    memset(p, 0, sizeof *p);
}

static void drop_pending(sl_rcluster *cl)
{
    for (size_t i = 0; i < cl->npend; i++)
        pcmd_clear(&cl->pend[i]);
    cl->npend = 0;
    cl->in_block = false;
    cl->block_slot = -1;
}

static void drop_ready(sl_rcluster *cl)
{
    for (size_t i = cl->readyhead; i < cl->nready; i++)
        if (cl->ready[i])
            freeReplyObject(cl->ready[i]);
    cl->nready = cl->readyhead = 0;
}

void sl_rcluster_free(sl_rcluster *cl)
{
    if (cl == NULL)
        return;
    drop_pending(cl);
    drop_ready(cl);
    free(cl->pend);
    free(cl->ready);
    for (size_t i = 0; i < cl->nnodes; i++) {
        sl_rconn_free(cl->nodes[i].conn);
        free(cl->nodes[i].host);
    }
    free(cl->nodes);
    free(cl->user);
    if (cl->password)
        explicit_bzero(cl->password, strlen(cl->password));
    free(cl->password);
    free(cl);
}

bool sl_rcluster_broken(const sl_rcluster *cl) { return cl->broken; }

void sl_rcluster_close_fds(const sl_rcluster *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].conn && sl_rconn_fd(cl->nodes[i].conn) >= 0)
            close(sl_rconn_fd(cl->nodes[i].conn));
}

int sl_rcluster_slot_address(const sl_rcluster *cl, int slot, char *buf, size_t n)
{
    if (slot < 0 || slot >= SL_REDIS_SLOTS || cl->slots[slot] < 0)
        return -1;
    const node *nd = &cl->nodes[cl->slots[slot]];
    snprintf(buf, n, "%s:%d", nd->host, nd->port);
    return 0;
}

void sl_rcluster_redirections(const sl_rcluster *cl, long *moved, long *asked)
{
    *moved = cl->moved;
    *asked = cl->asked;
}

/* ---- pipelining ------------------------------------------------------------ */

static bool cmd_is(const pcmd *p, const char *word)
{
    return p->argc > 0 && p->lens[0] == strlen(word) && strncasecmp(p->argv[0], word, p->lens[0]) == 0;
}

int sl_rcluster_append(sl_rcluster *cl, int argc, const char *const *argv, const size_t *lens,
                       sl_err *err)
{
    if (cl->broken)
        return sl_err_set(err, SL_EREDIS, "redis cluster: connection is broken");
    int slot = sl_redis_command_slot(argc, argv, lens, err);
    if (slot == -2)
        goto refuse;
    if (cl->npend == cl->cappend) {
        cl->cappend = cl->cappend ? 2 * cl->cappend : 16;
        cl->pend = sl_xrealloc(cl->pend, cl->cappend * sizeof *cl->pend);
    }
    pcmd *p = &cl->pend[cl->npend];
    p->argc = argc;
    p->argv = sl_xcalloc((size_t)argc, sizeof *p->argv);
    p->lens = sl_xcalloc((size_t)argc, sizeof *p->lens);
    for (int i = 0; i < argc; i++) {
        p->lens[i] = lens ? lens[i] : strlen(argv[i]);
        p->argv[i] = sl_xmalloc(p->lens[i] + 1);
        memcpy(p->argv[i], argv[i], p->lens[i]);
        p->argv[i][p->lens[i]] = '\0';
    }
    p->slot = slot;
    cl->npend++;
    if (cmd_is(p, "MULTI")) {
        cl->in_block = true;
        cl->block_slot = -1;
    } else if (cmd_is(p, "EXEC") || cmd_is(p, "DISCARD")) {
        cl->in_block = false;
    } else if (cl->in_block && slot >= 0) {
        if (cl->block_slot < 0) {
            cl->block_slot = slot;
        } else if (slot != cl->block_slot) {
            sl_err_set(err, SL_EINVAL, "MULTI: %.*s on %.*s (slot %d) in a transaction on slot "
                       "%d: a transaction must stay within one Redis Cluster slot",
                       (int)(p->lens[0] > 32 ? 32 : p->lens[0]), p->argv[0],
                       (int)(p->argc > 1 && p->lens[1] < 200 ? p->lens[1] : 0),
                       p->argc > 1 ? p->argv[1] : "", slot, cl->block_slot);
            goto refuse;
        }
    }
    return 0;
refuse:
    /* The commands already appended belong to a pipeline the caller can no
     * longer complete as written: drop them all and break, as a failed
     * append does on one connection. */
    drop_pending(cl);
    fail(cl);
    return -1;
}

/* One group of a batch: pend[start .. start+count), sent to one node. */
typedef struct group {
    size_t start, count;
    int slot;      /* -1: no key */
    int node;      /* where it was last sent */
} group;

/* What a group's replies ask for. */
enum redirect { REDIR_NONE, REDIR_MOVED, REDIR_ASK, REDIR_RETRY, REDIR_DOWN };

static enum redirect redirect_of(const redisReply *rep, int *slot, const char **target)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ERROR)
        return REDIR_NONE;
    bool moved = strncmp(rep->str, "MOVED ", 6) == 0, ask = strncmp(rep->str, "ASK ", 4) == 0;
    if (moved || ask) {
        const char *p = rep->str + (moved ? 6 : 4);
        char *end;
        long s = strtol(p, &end, 10);
        if (end == p || *end != ' ' || s < 0 || s >= SL_REDIS_SLOTS)
            return REDIR_NONE;
        *slot = (int)s;
        *target = end + 1;
        return moved ? REDIR_MOVED : REDIR_ASK;
    }
    if (strncmp(rep->str, "TRYAGAIN", 8) == 0)
        return REDIR_RETRY;
    if (strncmp(rep->str, "CLUSTERDOWN", 11) == 0)
        return REDIR_DOWN;
    return REDIR_NONE;
}

/* The redirection a group's replies ask for: its one command's, or within
 * a MULTI block the first refused queued command's (EXEC then aborted). */
static enum redirect group_redirect(const group *g, redisReply *const *replies, int *slot,
                                    const char **target)
{
    if (g->count == 1)
        return redirect_of(replies[0], slot, target);
    for (size_t i = 0; i < g->count; i++) {
        enum redirect r = redirect_of(replies[i], slot, target);
        if (r != REDIR_NONE)
            return r;
    }
    return REDIR_NONE;
}

/* Appends a group (ASKING first if asking) to its node's connection. */
static int send_group(sl_rcluster *cl, group *g, bool asking, sl_err *err)
{
    sl_rconn *c = node_conn(cl, g->node, err);
    if (c == NULL)
        return -1;
    if (asking) {
        const char *argv[] = { "ASKING" };
        if (sl_rconn_append(c, 1, argv, NULL, err) < 0)
            return -1;
    }
    for (size_t i = g->start; i < g->start + g->count; i++) {
        const pcmd *p = &cl->pend[i];
        if (sl_rconn_append(c, p->argc, (const char *const *)p->argv, p->lens, err) < 0)
            return -1;
    }
    return 0;
}

/* Reads a group's replies into replies[0 .. count), after ASKING's. */
static int read_group(sl_rcluster *cl, const group *g, bool asking, redisReply **replies,
                      sl_err *err)
{
    sl_rconn *c = cl->nodes[g->node].conn;
    if (cl->block_ms > 0 && sl_rconn_set_timeout(c, sl_rconn_timeout(c) + cl->block_ms, err) < 0)
        return -1;
    if (asking) {
        redisReply *ok = sl_rconn_reply(c, err);
        if (ok == NULL)
            return -1;
        freeReplyObject(ok);
    }
    for (size_t i = 0; i < g->count; i++) {
        replies[i] = sl_rconn_reply(c, err);
        if (replies[i] == NULL)
            return -1;
    }
    if (cl->block_ms > 0 && sl_rconn_set_timeout(c, sl_rconn_timeout(c), err) < 0)
        return -1;
    return 0;
}

static void free_replies(redisReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

/* Follows the redirections of one group, whose first replies are in
 * replies[], until it gets an answer that is not one (or gives up, leaving
 * the last error replies to the caller).  -1 with err on an I/O error. */
static int follow_redirects(sl_rcluster *cl, group *g, redisReply **replies, sl_err *err)
{
    for (int attempt = 0; attempt < MAX_REDIRECTS; attempt++) {
        int slot = -1;
        const char *target = NULL;
        bool asking = false;
        switch (group_redirect(g, replies, &slot, &target)) {
        case REDIR_NONE:
            return 0;
        case REDIR_MOVED: {
            int n = node_of_target(cl, target);
            if (n < 0)
                return 0;
            cl->slots[slot] = (int16_t)n;
            cl->stale = true;
            cl->moved++;
            g->node = n;
            break;
        }
        case REDIR_ASK: {
            int n = node_of_target(cl, target);
            if (n < 0)
                return 0;
            g->node = n;
            asking = true;
            cl->asked++;
            break;
        }
        case REDIR_DOWN:
            sleep_ms(RETRY_PAUSE_MS);
            if (read_map(cl, err) == 0)
                g->node = node_of_slot(cl, g->slot);
            break;
        case REDIR_RETRY:
            sleep_ms(RETRY_PAUSE_MS);
            g->node = node_of_slot(cl, g->slot);
            break;
        }
        free_replies(replies, g->count);
        if (send_group(cl, g, asking, err) < 0 ||
            sl_rconn_flush(cl->nodes[g->node].conn, err) < 0 ||
            read_group(cl, g, asking, replies, err) < 0)
            return -1;
    }
    return 0;
}

/* Cuts pend[] into groups: a MULTI block (to its EXEC or DISCARD) is one,
 * on the slot of its first keyed command; any other command is one; a
 * WAIT joins the group before it. */
static size_t make_groups(const sl_rcluster *cl, group *groups)
{
    size_t ng = 0;
    for (size_t i = 0; i < cl->npend;) {
        group *g = &groups[ng++];
        g->start = i;
        g->slot = cl->pend[i].slot;
        if (cmd_is(&cl->pend[i], "MULTI")) {
            size_t j = i + 1;
            while (j < cl->npend && !cmd_is(&cl->pend[j], "EXEC") && !cmd_is(&cl->pend[j], "DISCARD")) {
                if (g->slot < 0)
                    g->slot = cl->pend[j].slot;
                j++;
            }
            g->count = (j < cl->npend ? j + 1 : j) - i;
        } else {
            g->count = 1;
        }
        /* WAIT counts the replicas of the node it runs on: it goes with
         * the write before it, and moves with it on a redirection. */
        while (i + g->count < cl->npend && cmd_is(&cl->pend[i + g->count], "WAIT"))
            g->count++;
        g->node = node_of_slot(cl, g->slot);
        i += g->count;
    }
    return ng;
}

/* Sends every pending command and moves their replies, in order, into
 * ready[].  -1 with err (and broken) on an I/O error. */
static int run_batch(sl_rcluster *cl, sl_err *err)
{
    int rc = -1;
    group *groups = sl_xcalloc(cl->npend, sizeof *groups);
    redisReply **replies = sl_xcalloc(cl->npend, sizeof *replies);
    bool *used = NULL;
    if (cl->stale && read_map(cl, err) < 0)
        goto cleanup;
    size_t ng = make_groups(cl, groups);
    for (size_t g = 0; g < ng; g++)
        if (send_group(cl, &groups[g], false, err) < 0)
            goto cleanup;
    used = sl_xcalloc(cl->nnodes, sizeof *used);
    for (size_t g = 0; g < ng; g++) {
        if (!used[groups[g].node] && sl_rconn_flush(cl->nodes[groups[g].node].conn, err) < 0)
            goto cleanup;
        used[groups[g].node] = true;
    }
    for (size_t g = 0; g < ng; g++)
        if (read_group(cl, &groups[g], false, replies + groups[g].start, err) < 0)
            goto cleanup;
    for (size_t g = 0; g < ng; g++)
        if (follow_redirects(cl, &groups[g], replies + groups[g].start, err) < 0)
            goto cleanup;
    if (cl->nready + cl->npend > cl->capready) {
        cl->capready = cl->nready + cl->npend + 16;
        cl->ready = sl_xrealloc(cl->ready, cl->capready * sizeof *cl->ready);
    }
    memcpy(cl->ready + cl->nready, replies, cl->npend * sizeof *replies);
    cl->nready += cl->npend;
    memset(replies, 0, cl->npend * sizeof *replies);
    rc = 0;
cleanup:
    if (rc < 0)
        fail(cl);
    free_replies(replies, cl->npend);
    drop_pending(cl);
    free(replies);
    free(groups);
    free(used);
    return rc;
}

redisReply *sl_rcluster_reply(sl_rcluster *cl, sl_err *err)
{
    if (cl->broken) {
        sl_err_set(err, SL_EREDIS, "redis cluster: connection is broken");
        return NULL;
    }
    if (cl->readyhead == cl->nready) {
        cl->readyhead = cl->nready = 0;
        if (cl->npend == 0) {
            sl_err_set(err, SL_EINVAL, "redis cluster: a reply was asked for, none is due");
            return NULL;
        }
        if (run_batch(cl, err) < 0)
            return NULL;
    }
    redisReply *rep = cl->ready[cl->readyhead];
    cl->ready[cl->readyhead++] = NULL;
    return rep;
}

/* ---- SCAN over every master ------------------------------------------------- */

/* The masters of the map, in the order of their first slot: nodes[out[i]]. */
static size_t masters_of(const sl_rcluster *cl, int *out)
{
    size_t n = 0;
    for (size_t s = 0; s < SL_REDIS_SLOTS; s++) {
        int idx = cl->slots[s];
        bool seen = idx < 0;
        for (size_t i = 0; i < n && !seen; i++)
            seen = out[i] == idx;
        if (!seen)
            out[n++] = idx;
    }
    return n;
}

/* SCAN walks one node's keys: the cursor handed to the caller is
 * "MASTER-CURSOR" (a plain "0" to begin and to end), so that a caller
 * looping until "0" walks every master in turn.  A resharding meanwhile
 * may make it miss or repeat keys, which SCAN allows anyway. */
static redisReply *scan_command(sl_rcluster *cl, int argc, const char *const *argv,
                                const size_t *lens, sl_err *err)
{
    if (cl->broken) {
        sl_err_set(err, SL_EREDIS, "redis cluster: connection is broken");
        return NULL;
    }
    if (argc < 2 || (lens ? lens[1] : strlen(argv[1])) > 40) {
        sl_err_set(err, SL_EINVAL, "redis cluster: SCAN: a cursor is needed");
        return NULL;
    }
    char cur[48];
    snprintf(cur, sizeof cur, "%.*s", (int)(lens ? lens[1] : strlen(argv[1])), argv[1]);
    long master = 0;
    const char *node_cursor = cur;
    char *dash = strchr(cur, '-');
    if (dash) {
        *dash = '\0';
        master = strtol(cur, NULL, 10);
        node_cursor = dash + 1;
    }
    int *masters = sl_xcalloc(cl->nnodes ? cl->nnodes : 1, sizeof *masters);
    size_t nm = masters_of(cl, masters);
    redisReply *rep = NULL;
    if (master < 0 || (size_t)master >= nm) {
        sl_err_set(err, SL_EINVAL, "redis cluster: SCAN: bad cursor %s", argv[1]);
        goto cleanup;
    }
    const char **a = sl_xcalloc((size_t)argc, sizeof *a);
    size_t *l = sl_xcalloc((size_t)argc, sizeof *l);
    for (int i = 0; i < argc; i++)
        a[i] = argv[i], l[i] = lens ? lens[i] : strlen(argv[i]);
    a[1] = node_cursor, l[1] = strlen(node_cursor);
    sl_rconn *c = node_conn(cl, masters[master], err);
    rep = c ? sl_rconn_command(c, argc, a, l, err) : NULL;
    free(a);
    free(l);
    if (c == NULL || sl_rconn_broken(c))
        fail(cl);
    if (rep == NULL)
        goto cleanup;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING) {
        redisReply *cr = rep->element[0];
        bool done = strcmp(cr->str, "0") == 0;
        char next[64];
        if (done && (size_t)master + 1 < nm)
            snprintf(next, sizeof next, "%ld-0", master + 1);
        else if (done)
            snprintf(next, sizeof next, "0");
        else
            snprintf(next, sizeof next, "%ld-%s", master, cr->str);
        free(cr->str);
        cr->str = sl_xstrdup(next);
        cr->len = strlen(next);
    }
cleanup:
    free(masters);
    return rep;
}

/* ---- XREADGROUP over streams of several slots --------------------------------- */

static bool word_is(const char *arg, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(arg, word, len) == 0;
}

/* Sends one XREAD/XREADGROUP per slot of its streams, pipelined (each to
 * its own master), and reads every reply; with BLOCK, the per-slot reads
 * block concurrently on their masters.  replies[g] gets slot group g's
 * reply.  -1 with err. */
static int read_per_slot(sl_rcluster *cl, int block_ms, int argc, const char *const *argv,
                         const size_t *lens, int si, const int *slot_of, const int *groups,
                         int ngroups, bool blocking, redisReply **replies, sl_err *err)
{
    int n = (argc - si - 1) / 2;
    const char **a = sl_xcalloc((size_t)argc, sizeof *a);
    size_t *l = sl_xcalloc((size_t)argc, sizeof *l);
    int rc = -1;
    for (int g = 0; g < ngroups; g++) {
        int k = 0;
        for (int i = 0; i < si; i++) {
            size_t li = lens[i];
            if (!blocking && word_is(argv[i], li, "BLOCK")) {
                i++;   /* and its argument */
                continue;
            }
            a[k] = argv[i], l[k++] = li;
        }
        a[k] = argv[si], l[k++] = lens[si];
        for (int j = 0; j < n; j++)
            if (slot_of[j] == groups[g])
                a[k] = argv[si + 1 + j], l[k++] = lens[si + 1 + j];
        for (int j = 0; j < n; j++)
            if (slot_of[j] == groups[g])
                a[k] = argv[si + 1 + n + j], l[k++] = lens[si + 1 + n + j];
        if (sl_rcluster_append(cl, k, a, l, err) < 0)
            goto cleanup;
    }
    cl->block_ms = blocking ? block_ms : 0;
    for (int g = 0; g < ngroups; g++) {
        replies[g] = sl_rcluster_reply(cl, err);
        if (replies[g] == NULL)
            goto cleanup;
    }
    rc = 0;
cleanup:
    cl->block_ms = 0;
    free(a);
    free(l);
    return rc;
}

/* One reply in XREADGROUP's form from the per-slot replies: each stream's
 * entries, in the order the caller listed the streams (its priority).
 * The stream elements are moved out of replies[]. */
static redisReply *merge_reads(int argc, const char *const *argv, const size_t *lens, int si,
                               redisReply **replies, int ngroups)
{
    int n = (argc - si - 1) / 2;
    redisReply *out = sl_xcalloc(1, sizeof *out);
    out->type = REDIS_REPLY_ARRAY;
    out->element = sl_xcalloc((size_t)n, sizeof *out->element);
    for (int j = 0; j < n; j++) {
        const char *key = argv[si + 1 + j];
        for (int g = 0; g < ngroups; g++) {
            redisReply *r = replies[g];
            for (size_t e = 0; r->type == REDIS_REPLY_ARRAY && e < r->elements; e++) {
                redisReply *st = r->element[e];
                if (st && st->type == REDIS_REPLY_ARRAY && st->elements == 2 &&
                    st->element[0]->type == REDIS_REPLY_STRING &&
                    st->element[0]->len == lens[si + 1 + j] &&
                    memcmp(st->element[0]->str, key, st->element[0]->len) == 0) {
                    out->element[out->elements++] = st;
                    r->element[e] = NULL;
                }
            }
        }
    }
    if (out->elements == 0) {
        free(out->element);
        out->element = NULL;
        out->type = REDIS_REPLY_NIL;
    }
    return out;
}

/* XREAD/XREADGROUP over streams of several slots: first without blocking
 * on every slot at once; if nothing came and the caller asked to block,
 * again with BLOCK on every slot concurrently, so that nobody polls.  The
 * price: an entry arriving on one master is returned when every blocked
 * read has answered, at most block_ms later. */
static redisReply *split_read(sl_rcluster *cl, int block_ms, int argc, const char *const *argv,
                              const size_t *given_lens, sl_err *err)
{
    size_t *lens = sl_xcalloc((size_t)argc, sizeof *lens);
    for (int i = 0; i < argc; i++)
        lens[i] = given_lens ? given_lens[i] : strlen(argv[i]);
    int si = -1;
    bool blocks = false;
    for (int i = 1; i < argc && si < 0; i++) {
        if (word_is(argv[i], lens[i], "STREAMS"))
            si = i;
        else if (word_is(argv[i], lens[i], "BLOCK"))
            blocks = true;
    }
    int n = si > 0 ? (argc - si - 1) / 2 : 0;
    int *slot_of = sl_xcalloc((size_t)(n ? n : 1), sizeof *slot_of);
    int *groups = sl_xcalloc((size_t)(n ? n : 1), sizeof *groups);
    redisReply **replies = sl_xcalloc((size_t)(n ? n : 1), sizeof *replies);
    redisReply *out = NULL;
    int ngroups = 0;
    for (int j = 0; j < n; j++) {
        slot_of[j] = sl_redis_keyslot(argv[si + 1 + j], lens[si + 1 + j]);
        bool seen = false;
        for (int g = 0; g < ngroups && !seen; g++)
            seen = groups[g] == slot_of[j];
        if (!seen)
            groups[ngroups++] = slot_of[j];
    }
    for (int pass = 0; pass < (blocks && block_ms > 0 ? 2 : 1) && out == NULL; pass++) {
        if (read_per_slot(cl, block_ms, argc, argv, lens, si, slot_of, groups, ngroups, pass == 1,
                          replies, err) < 0)
            goto cleanup;
        for (int g = 0; g < ngroups; g++) {
            if (replies[g]->type == REDIS_REPLY_ERROR) {
                sl_err_set(err, SL_EREDIS, "redis cluster: %.*s: %s", (int)lens[0], argv[0],
                           replies[g]->str);
                goto cleanup;
            }
        }
        out = merge_reads(argc, argv, lens, si, replies, ngroups);
        if (out->type == REDIS_REPLY_NIL && pass == 0 && blocks && block_ms > 0) {
            freeReplyObject(out);
            out = NULL;
        }
        free_replies(replies, (size_t)ngroups);
    }
cleanup:
    free_replies(replies, (size_t)ngroups);
    free(replies);
    free(groups);
    free(slot_of);
    free(lens);
    return out;
}

redisReply *sl_rcluster_command(sl_rcluster *cl, int block_ms, int argc, const char *const *argv,
                                const size_t *lens, sl_err *err)
{
    if (argc > 0 && (lens ? lens[0] : strlen(argv[0])) == 4 && strncasecmp(argv[0], "SCAN", 4) == 0)
        return scan_command(cl, argc, argv, lens, err);
    if (cl->broken) {
        sl_err_set(err, SL_EREDIS, "redis cluster: connection is broken");
        return NULL;
    }
    if (cl->npend > 0 || cl->readyhead < cl->nready) {
        sl_err_set(err, SL_EINVAL, "redis cluster: a command was sent with pipelined replies unread");
        return NULL;
    }
    int slot = sl_redis_command_slot(argc, argv, lens, err);
    size_t l0 = argc > 0 ? (lens ? lens[0] : strlen(argv[0])) : 0;
    if (slot == -2 && (word_is(argv[0], l0, "XREADGROUP") || word_is(argv[0], l0, "XREAD")))
        return split_read(cl, block_ms, argc, argv, lens, err);
    if (slot == -2)
        return NULL;
    if (sl_rcluster_append(cl, argc, argv, lens, err) < 0)
        return NULL;
    cl->block_ms = block_ms > 0 ? block_ms : 0;
    redisReply *rep = sl_rcluster_reply(cl, err);
    cl->block_ms = 0;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        char where[300] = "cluster";
        sl_rcluster_slot_address(cl, slot >= 0 ? slot : 0, where, sizeof where);
        sl_err_set(err, SL_EREDIS, "redis %s: %.*s: %s", where, (int)(l0 > 32 ? 32 : l0), argv[0],
                   rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}
