/* test_redis_cluster.c: sl_redis against a real Redis Cluster (3 masters +
 * 3 replicas) and a real Sentinel setup (1 master + 1 replica + 3
 * sentinels), each started for the test by scripts/cluster.sh (and stopped
 * by it when the test process ends, whatever happens).
 *
 * Covered: the CRC16 and key-slot vectors of the cluster specification,
 * key positions of the commands sluice sends, the URL forms; commands and
 * pipelines routed to the master of their slot, checked by asking each
 * master directly; a cross-slot command or transaction refused before
 * anything is sent; real worker pools processing queues spread over the
 * three masters exactly once (PostgreSQL is the witness); a slot migrated
 * (MIGRATING/IMPORTING + MIGRATE) under traffic; a master SIGKILLed and
 * replaced by its replica; a Sentinel failover. */
#include "harness.h"

#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "mem.h"
#include "queue.h"
#include "redis.h"
#include "redis_slot.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- unit: slots, keys, URLs -------------------------------------------- */

Test(slot, crc16_and_keyslot_vectors_of_the_cluster_spec)
{
    /* The specification's check value: CRC16/XMODEM("123456789") = 0x31C3. */
    cr_assert_eq(sl_crc16("123456789", 9), 0x31C3);
    cr_assert_eq(sl_redis_keyslot("123456789", 9), 0x31C3 % 16384);
    /* Slots redis-cli's CLUSTER KEYSLOT gives. */
    cr_assert_eq(sl_redis_keyslot("foo", 3), 12182);
    cr_assert_eq(sl_redis_keyslot("bar", 3), 5061);
    cr_assert_eq(sl_redis_keyslot("hello", 5), 866);
    /* Hash tags, the specification's examples. */
    int a = sl_redis_keyslot("{user1000}.following", 20);
    cr_assert_eq(a, sl_redis_keyslot("{user1000}.followers", 20));
    cr_assert_eq(a, sl_redis_keyslot("user1000", 8));
    cr_assert_eq(sl_redis_keyslot("foo{}{bar}", 10), sl_crc16("foo{}{bar}", 10) % 16384);
    cr_assert_eq(sl_redis_keyslot("foo{{bar}}zap", 13), sl_redis_keyslot("{bar", 4));
    cr_assert_eq(sl_redis_keyslot("foo{bar}{zap}", 13), sl_redis_keyslot("bar", 3));
    /* Every key of a queue is in the queue's slot. */
    char k1[SL_KEY_MAX], k2[SL_KEY_MAX];
    sl_queue_key(k1, "emails", "jobs");
    sl_queue_key(k2, "emails", "delayed");
    cr_assert_eq(sl_redis_keyslot(k1, strlen(k1)), sl_redis_keyslot("emails", 6));
    cr_assert_eq(sl_redis_keyslot(k2, strlen(k2)), sl_redis_keyslot("emails", 6));
}

static int slot_of(int argc, const char **argv, sl_err *err)
{
    return sl_redis_command_slot(argc, argv, NULL, err);
}

Test(slot, key_positions_of_the_commands_sluice_sends)
{
    sl_err err;
    int foo = sl_redis_keyslot("foo", 3), bar = sl_redis_keyslot("bar", 3);
    const char *ping[] = { "PING" }, *multi[] = { "multi" }, *cfg[] = { "CONFIG", "GET", "x" };
    cr_assert_eq(slot_of(1, ping, &err), -1);
    cr_assert_eq(slot_of(1, multi, &err), -1);
    cr_assert_eq(slot_of(3, cfg, &err), -1);
    const char *xadd[] = { "XADD", "foo", "*", "job", "bar" };
    cr_assert_eq(slot_of(5, xadd, &err), foo);
    const char *xgroup[] = { "XGROUP", "CREATE", "foo", "bar", "0" };
    cr_assert_eq(slot_of(5, xgroup, &err), foo);
    const char *xinfo[] = { "xinfo", "GROUPS", "bar" };
    cr_assert_eq(slot_of(3, xinfo, &err), bar);
    const char *eval[] = { "EVALSHA", "abc", "2", "{bar}1", "{bar}2", "foo", "foo" };
    cr_assert_eq(slot_of(7, eval, &err), bar);
    const char *eval0[] = { "EVAL", "return 1", "0", "foo" };
    cr_assert_eq(slot_of(4, eval0, &err), -1);
    const char *xread[] = { "XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "BLOCK", "5", "STREAMS",
                            "{q}a", "{q}b", ">", ">" };
    cr_assert_eq(slot_of(13, xread, &err), sl_redis_keyslot("q", 1));
    /* Keys of two slots: refused, the message names both. */
    const char *cross[] = { "XREADGROUP", "GROUP", "g", "c", "STREAMS", "foo", "bar", ">", ">" };
    cr_assert_eq(slot_of(9, cross, &err), -2);
    cr_assert(strstr(err.msg, "foo (slot 12182)") && strstr(err.msg, "bar (slot 5061)"), "%s", err.msg);
    const char *del[] = { "DEL", "foo", "bar" };
    cr_assert_eq(slot_of(3, del, &err), -2);
    cr_assert(strstr(err.msg, "DEL"), "%s", err.msg);
}

Test(slot, cluster_and_sentinel_urls)
{
    sl_err err;
    cr_assert_eq(sl_redis_url_check("redis+cluster://127.0.0.1:7000", &err), 0, "%s", err.msg);
    cr_assert_eq(sl_redis_url_check("redis+cluster://u:p%40ss@a:7000,b,[::1]:7002/0", &err), 0,
                 "%s", err.msg);
    cr_assert_eq(sl_redis_url_check("redis+sentinel://s1:26379,s2/mymaster?db=3", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(sl_redis_url_check("redis+sentinel://:pw@s1/my.master-1", &err), 0, "%s", err.msg);
    const char *bad[] = {
        "redis+cluster://a:7000/1",           /* a cluster has db 0 only */
        "redis+cluster://a:7000?db=0",
        "redis+cluster://a:7000,,b:7001",     /* empty host */
        "redis+cluster://",                   /* no host */
        "redis+cluster://a:99999",            /* bad port */
        "redis+sentinel://s1:26379",          /* no master name */
        "redis+sentinel://s1/",               /* empty master name */
        "redis+sentinel://s1/na me",
        "redis+sentinel://s1/m?timeout=3",
        "redis+sentinel://user:hunter2@s1:0/m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(sl_redis_url_check(bad[i], &err), -1, "%s accepted", bad[i]);
        cr_assert_eq(err.code, SL_EINVAL);
        cr_assert(!strstr(err.msg, "hunter2"), "the password leaked: %s", err.msg);
    }
}

Test(slot, wait_options_in_urls)
{
    sl_err err;
    const char *good[] = {
        "redis://127.0.0.1:6379/0?wait_replicas=1",
        "redis://:pw@127.0.0.1?wait_replicas=2&wait_timeout=250ms",
        "redis://[::1]:6379?wait_timeout=1h&wait_replicas=0",
        "unix:///run/redis.sock?db=2&wait_replicas=1",
        "redis+cluster://a:7000,b:7001?wait_replicas=1&wait_timeout=2s",
        "redis+cluster://a:7000/0?wait_replicas=1",
        "redis+sentinel://s1,s2/m?db=1&wait_replicas=1",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(sl_redis_url_check(good[i], &err), 0, "%s: %s", good[i], err.msg);
    const char *bad[] = {
        "redis://:hunter2@h?wait_replicas=-1",
        "redis://:hunter2@h?wait_replicas=+1",
        "redis://:hunter2@h?wait_replicas=101",
        "redis://:hunter2@h?wait_replicas=",
        "redis://:hunter2@h?wait_replicas",
        "redis://:hunter2@h?wait_replicas=1&wait_replicas=2",
        "redis://:hunter2@h?wait_timeout=0ms",
        "redis://:hunter2@h?wait_timeout=500",      /* the unit is explicit */
        "redis://:hunter2@h?wait_timeout=2h",
        "redis://:hunter2@h?db=1",                  /* redis:// names it in its path */
        "redis://:hunter2@h?timeout=1s",
        "redis://:hunter2@h?wait_replicas=1&",
        "unix://:hunter2@/s.sock?wait_replicas=x",
        "redis+cluster://:hunter2@a?db=0",
        "redis+sentinel://:hunter2@s/m?wait_timeout=forever",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(sl_redis_url_check(bad[i], &err), -1, "%s accepted", bad[i]);
        cr_assert_eq(err.code, SL_EINVAL);
        cr_assert(strstr(err.msg, "wait_") || strstr(err.msg, "option"), "%s: %s", bad[i], err.msg);
        cr_assert(!strstr(err.msg, "hunter2"), "the password leaked: %s", err.msg);
    }
}

/* ---- servers ---------------------------------------------------------------- */

typedef struct servers {
    char dir[256];       /* state directory of scripts/cluster.sh */
    char url[512];       /* CLUSTER_URL or SENTINEL_URL */
    int ports[6];        /* cluster: masters then replicas; sentinel: master, replica */
    int nports;
} servers;

/* Runs scripts/cluster.sh start KIND and reads the env file it writes. */
static void servers_start(servers *s, const char *kind)
{
    char name[64];
    th_name(name, sizeof name, kind);
    snprintf(s->dir, sizeof s->dir, "/tmp/sluice-%s", name);
    char owner[16];
    snprintf(owner, sizeof owner, "%d", (int)getpid());
    const char *argv[] = { SLUICE_SOURCE_DIR "/scripts/cluster.sh", "start", kind, s->dir, owner,
                           NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "scripts/cluster.sh start %s failed:\n%s%s", kind, r.out, r.err);
    th_result_free(&r);
    char *path = sl_xasprintf("%s/env", s->dir);
    char *env = th_read_file(path);
    cr_assert_not_null(env, "%s", path);
    const char *url = strstr(env, kind[0] == 'c' ? "CLUSTER_URL='" : "SENTINEL_URL='");
    cr_assert_not_null(url, "%s", env);
    url = strchr(url, '\'') + 1;
    snprintf(s->url, sizeof s->url, "%.*s", (int)strcspn(url, "'"), url);
    s->nports = 0;
    const char *p = strstr(env, kind[0] == 'c' ? "CLUSTER_PORTS='" : "MASTER_PORT=");
    cr_assert_not_null(p);
    p = strchr(p, kind[0] == 'c' ? '\'' : '=') + 1;
    if (kind[0] == 's') {
        s->ports[s->nports++] = atoi(p);
        p = strstr(env, "REPLICA_PORT=");
        cr_assert_not_null(p);
        s->ports[s->nports++] = atoi(p + 13);
    } else {
        while (s->nports < 6 && *p && *p != '\'') {
            s->ports[s->nports++] = (int)strtol(p, (char **)&p, 10);
            while (*p == ' ')
                p++;
        }
    }
    cr_assert(s->nports >= 2, "%s", env);
    free(env);
    free(path);
}

static void servers_stop(servers *s)
{
    const char *argv[] = { SLUICE_SOURCE_DIR "/scripts/cluster.sh", "stop", s->dir, NULL };
    th_result r = th_run(argv, NULL);
    th_result_free(&r);
}

static void servers_kill(servers *s, int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *argv[] = { SLUICE_SOURCE_DIR "/scripts/cluster.sh", "kill", s->dir, p, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
}

static sl_redis *connect_url(const char *url)
{
    sl_err err;
    sl_redis *r = sl_redis_connect(url, 5000, &err);
    cr_assert_not_null(r, "%s", err.msg);
    return r;
}

/* A plain connection to one node, bypassing the cluster client. */
static sl_redis *connect_node(int port)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    return connect_url(url);
}

/* Writes into queues[i] (n of them) names of queues served by n different
 * masters of r's map. */
static void queues_on_masters(sl_redis *r, char queues[][64], int n)
{
    char addrs[3][300] = { "", "", "" };
    int found = 0;
    for (int attempt = 0; attempt < 1000 && found < n; attempt++) {
        char q[64], addr[300];
        th_name(q, sizeof q, "cq");
        cr_assert_eq(sl_redis_slot_address(r, sl_redis_keyslot(q, strlen(q)), addr, sizeof addr), 0);
        bool seen = false;
        for (int i = 0; i < found; i++)
            seen = seen || strcmp(addrs[i], addr) == 0;
        if (!seen) {
            snprintf(addrs[found], sizeof addrs[found], "%s", addr);
            snprintf(queues[found++], 64, "%s", q);
        }
    }
    cr_assert_eq(found, n, "the slot map has fewer than %d masters", n);
}

/* The port of the master serving queue's slot in r's map. */
static int master_port(sl_redis *r, const char *queue)
{
    char addr[300];
    cr_assert_eq(sl_redis_slot_address(r, sl_redis_keyslot(queue, strlen(queue)), addr, sizeof addr), 0);
    return atoi(strrchr(addr, ':') + 1);
}

static long long xlen_on(int port, const char *queue, sl_err *err)
{
    sl_redis *n = connect_node(port);
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *argv[] = { "XLEN", key };
    redisReply *rep = sl_redis_command(n, 2, argv, NULL, err);
    long long len = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep)
        freeReplyObject(rep);
    sl_redis_free(n);
    return len;
}

static void enqueue_noop(sl_redis *r, const char *queue, char id[37])
{
    char myid[37];
    sl_jobid_new(id ? id : myid);
    sl_job job = { .id = id ? id : myid, .kind = "noop", .queue = (char *)queue, .attempt = 1,
                   .enqueued_at = sl_now_ms() };
    sl_err err;
    cr_assert_eq(sl_queue_enqueue(r, &job, &err), 0, "%s", err.msg);
}

static long long info_number(int port, const char *field)
{
    sl_redis *n = connect_node(port);
    const char *argv[] = { "INFO", "replication" };
    sl_err err;
    redisReply *rep = sl_redis_command(n, 2, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    long long v = -1;
    const char *p = strstr(rep->str, field);
    if (p)
        v = atoll(p + strlen(field));
    freeReplyObject(rep);
    sl_redis_free(n);
    return v;
}

/* True once the master on *(int *)arg has a replica done with its first
 * synchronisation (a WAIT before that counts no replica). */
static bool replica_online(void *arg)
{
    sl_redis *n = connect_node(*(int *)arg);
    const char *argv[] = { "INFO", "replication" };
    sl_err err;
    redisReply *rep = sl_redis_command(n, 2, argv, NULL, &err);
    bool yes = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "state=online") != NULL;
    if (rep)
        freeReplyObject(rep);
    sl_redis_free(n);
    return yes;
}

static void wait_replica_online(int master)
{
    cr_assert(th_wait(replica_online, &master, 60000), "the replica of %d never came online", master);
}

/* The process id of the Redis server on port (INFO server). */
static pid_t node_pid(int port)
{
    sl_redis *n = connect_node(port);
    const char *argv[] = { "INFO", "server" };
    sl_err err;
    redisReply *rep = sl_redis_command(n, 2, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    const char *p = strstr(rep->str, "process_id:");
    cr_assert_not_null(p);
    pid_t pid = (pid_t)atol(p + 11);
    freeReplyObject(rep);
    sl_redis_free(n);
    cr_assert(pid > 1);
    return pid;
}

/* The port of the master of queue's slot, through a fresh cluster client. */
static int master_port_of(const char *url, const char *queue)
{
    sl_redis *r = connect_url(url);
    int port = master_port(r, queue);
    sl_redis_free(r);
    return port;
}

/* Enqueues one job through url; returns what sl_queue_enqueue did. */
static int enqueue_once(const char *url, const char *queue, sl_err *err)
{
    sl_redis *r = connect_url(url);
    char id[37];
    sl_jobid_new(id);
    sl_job job = { .id = id, .kind = "noop", .queue = (char *)queue, .attempt = 1,
                   .enqueued_at = sl_now_ms() };
    int rc = sl_queue_enqueue(r, &job, err);
    cr_assert(!sl_redis_broken(r), "a refused WAIT broke the connection");
    sl_redis_free(r);
    return rc;
}

/* ---- routing ------------------------------------------------------------------ */

TestSuite(cluster, .timeout = 240);

Test(cluster, commands_and_pipelines_go_to_the_master_of_their_slot)
{
    servers s;
    servers_start(&s, "cluster");
    sl_redis *r = connect_url(s.url);
    cr_assert(sl_redis_is_cluster(r));
    char q[3][64];
    queues_on_masters(r, q, 3);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k <= i; k++)
            enqueue_noop(r, q[i], NULL);
    sl_err err;
    for (int i = 0; i < 3; i++) {
        int port = master_port(r, q[i]);
        cr_assert_eq(xlen_on(port, q[i], &err), i + 1, "%s on %d", q[i], port);
        /* Any other master redirects: the key is not there. */
        for (int j = 0; j < 3; j++) {
            if (j == i)
                continue;
            cr_assert_eq(xlen_on(master_port(r, q[j]), q[i], &err), -1);
            cr_assert(strstr(err.msg, "MOVED"), "%s", err.msg);
        }
    }
    /* A pipeline interleaving the three masters: replies in the order sent. */
    char stats[3][SL_KEY_MAX];
    for (int i = 0; i < 3; i++)
        sl_queue_key(stats[i], q[i], "stats");
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 3; i++) {
            char by[8];
            snprintf(by, sizeof by, "%d", i + 1);
            const char *argv[] = { "HINCRBY", stats[i], "t", by };
            cr_assert_eq(sl_redis_append(r, 4, argv, NULL, &err), 0, "%s", err.msg);
        }
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 3; i++) {
            redisReply *rep = sl_redis_reply(r, &err);
            cr_assert_not_null(rep, "%s", err.msg);
            cr_assert_eq(rep->type, REDIS_REPLY_INTEGER);
            cr_assert_eq(rep->integer, (long long)(round + 1) * (i + 1));
            freeReplyObject(rep);
        }
    /* A transaction goes to the slot of its first keyed command. */
    const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
    const char *incr[] = { "HINCRBY", stats[2], "tx", "5" };
    cr_assert_eq(sl_redis_append(r, 1, multi, NULL, &err), 0);
    cr_assert_eq(sl_redis_append(r, 4, incr, NULL, &err), 0);
    cr_assert_eq(sl_redis_append(r, 1, exec, NULL, &err), 0);
    for (int i = 0; i < 3; i++) {
        redisReply *rep = sl_redis_reply(r, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        cr_assert_neq(rep->type, REDIS_REPLY_ERROR, "%s", rep->str);
        if (i == 2)
            cr_assert(rep->type == REDIS_REPLY_ARRAY && rep->element[0]->integer == 5);
        freeReplyObject(rep);
    }
    /* A transaction over two slots is refused before anything is sent. */
    const char *other[] = { "HINCRBY", stats[0], "tx", "1" };
    cr_assert_eq(sl_redis_append(r, 1, multi, NULL, &err), 0);
    cr_assert_eq(sl_redis_append(r, 4, incr, NULL, &err), 0);
    cr_assert_eq(sl_redis_append(r, 4, other, NULL, &err), -1);
    cr_assert(strstr(err.msg, "one Redis Cluster slot"), "%s", err.msg);
    cr_assert(sl_redis_broken(r));
    sl_redis_free(r);
    r = connect_url(s.url);
    const char *hget[] = { "HGET", stats[2], "tx" };
    redisReply *rep = sl_redis_command(r, 3, hget, NULL, &err);
    cr_assert(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "5") == 0,
              "the refused transaction ran");
    freeReplyObject(rep);
    /* A cross-slot command is refused without breaking the connection. */
    char k0[SL_KEY_MAX], k1[SL_KEY_MAX];
    sl_queue_key(k0, q[0], "jobs");
    sl_queue_key(k1, q[1], "jobs");
    const char *del[] = { "DEL", k0, k1 };
    cr_assert_null(sl_redis_command(r, 3, del, NULL, &err));
    cr_assert(strstr(err.msg, "different Redis Cluster slots"), "%s", err.msg);
    cr_assert_eq(xlen_on(master_port(r, q[0]), q[0], &err), 1, "the refused DEL ran");
    cr_assert(!sl_redis_broken(r));
    /* WAIT goes to the master that took the write: with the replica of
     * q[0]'s master stopped, only enqueues to q[0] time out. */
    int m0 = master_port(r, q[0]);
    sl_redis_free(r);
    int rep0 = (int)info_number(m0, "slave0:ip=127.0.0.1,port=");
    cr_assert(rep0 > 0, "master %d has no replica", m0);
    pid_t rp = node_pid(rep0);
    char *url = sl_xasprintf("%s?wait_replicas=1&wait_timeout=300ms", s.url);
    for (int i = 0; i < 3; i++)
        wait_replica_online(master_port_of(s.url, q[i]));
    cr_assert_eq(kill(rp, SIGSTOP), 0);
    int rc[3];
    sl_err errs[3];
    for (int i = 0; i < 3; i++)
        rc[i] = enqueue_once(url, q[i], &errs[i]);
    cr_assert_eq(kill(rp, SIGCONT), 0);
    cr_assert_eq(rc[0], -1, "WAIT did not go to the master of %s", q[0]);
    cr_assert(strstr(errs[0].msg, "0 of the 1 replicas"), "%s", errs[0].msg);
    cr_assert_eq(rc[1], 0, "%s", errs[1].msg);
    cr_assert_eq(rc[2], 0, "%s", errs[2].msg);
    free(url);
    servers_stop(&s);
}

Test(cluster, one_read_over_queues_on_three_masters_keeps_their_order_and_blocks)
{
    servers s;
    servers_start(&s, "cluster");
    sl_redis *r = connect_url(s.url);
    char q[3][64];
    queues_on_masters(r, q, 3);
    char *queues[3] = { q[2], q[0], q[1] };   /* priority order: q2 first */
    sl_err err;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sl_queue_ensure_group(r, q[i], &err), 0, "%s", err.msg);
        enqueue_noop(r, q[i], NULL);
    }
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, "c1", queues, 3, 1, 0, &b, &err), 3, "%s", err.msg);
    for (size_t i = 0; i < 3; i++)
        cr_assert_str_eq(b.items[i].queue, queues[i], "entry %zu came from %s", i, b.items[i].queue);
    sl_batch_clear(&b);
    /* Nothing waiting: a blocking read waits on all three masters at once
     * and returns the job that one of them receives meanwhile. */
    pid_t producer = fork();
    cr_assert(producer >= 0);
    if (producer == 0) {
        usleep(500000);
        sl_redis *p = sl_redis_connect(s.url, 5000, &err);
        sl_job job = { .id = "0190a0a0-0000-7000-8000-000000000001", .kind = "noop", .queue = q[1],
                       .attempt = 1, .enqueued_at = sl_now_ms() };
        _exit(p && sl_queue_enqueue(p, &job, &err) == 0 ? 0 : 1);
    }
    int got = 0;
    for (int tries = 0; tries < 20 && got == 0; tries++) {
        got = sl_queue_read(r, "c1", queues, 3, 1, 2000, &b, &err);
        cr_assert_geq(got, 0, "%s", err.msg);
    }
    int status;
    cr_assert_eq(waitpid(producer, &status, 0), producer);
    cr_assert_eq(got, 1);
    cr_assert_str_eq(b.items[0].queue, q[1]);
    sl_batch_free(&b);
    sl_redis_free(r);
    servers_stop(&s);
}

/* ---- worker pools ----------------------------------------------------------- */

static char *pool_config(void)
{
    return th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n  batch: 16\n"
                                        "  shutdown_timeout: 20s\n");
}

/* A one-process pool on one queue, talking to Redis at url. */
static pid_t pool_start(const char *cfg, const char *url, const char *queue, const char *log)
{
    cr_assert_eq(setenv("SLUICE_REDIS_URL", url, 1), 0);
    const char *args[] = { "--config", cfg, "--queues", queue, "--processes", "1", NULL };
    return th_worker_start(args, log);
}

static void pool_stop(pid_t pid, const char *log)
{
    int status = th_stop(pid, SIGTERM, 60000);
    char *text = th_read_file(log);
    cr_assert_eq(status, 0, "worker did not stop cleanly (status %d); log:\n%s", status,
                 text ? text : "");
    cr_assert(text && !strstr(text, "Sanitizer") && !strstr(text, "runtime error"), "%s", text);
    free(text);
}

typedef struct rows_want {
    char (*queues)[64];
    int n;
    long long want;
} rows_want;

static long long rows_of(char (*queues)[64], int n, bool distinct)
{
    long long total = 0;
    for (int i = 0; i < n; i++) {
        const char *p[] = { queues[i] };
        total += th_pg_number(distinct ? "SELECT count(DISTINCT id) FROM sluice_jobs WHERE queue = $1 "
                                         "AND status = 'succeeded'"
                                       : "SELECT count(*) FROM sluice_jobs WHERE queue = $1", 1, p);
    }
    return total;
}

static bool enough_rows(void *arg)
{
    rows_want *w = arg;
    return rows_of(w->queues, w->n, false) >= w->want;
}

/* Every job ran once: rows, distinct succeeded ids and attempts all equal want. */
static void assert_exactly_once(char (*queues)[64], int n, long long want)
{
    rows_want w = { queues, n, want };
    bool all = th_wait(enough_rows, &w, 120000);
    cr_assert(all, "%lld of %lld jobs have a row after 120 s", rows_of(queues, n, false), want);
    cr_assert_eq(rows_of(queues, n, false), want);
    cr_assert_eq(rows_of(queues, n, true), want);
    long long attempts = 0;
    for (int i = 0; i < n; i++) {
        const char *p[] = { queues[i] };
        attempts += th_pg_number("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON "
                                 "j.id = a.job_id WHERE j.queue = $1", 1, p);
    }
    cr_assert_eq(attempts, want, "%lld attempts recorded for %lld jobs", attempts, want);
}

Test(cluster, pools_process_queues_on_three_masters_exactly_once)
{
    th_migrate();
    servers s;
    servers_start(&s, "cluster");
    sl_redis *r = connect_url(s.url);
    char q[3][64];
    queues_on_masters(r, q, 3);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 100; k++)
            enqueue_noop(r, q[i], NULL);
    char *cfg = pool_config();
    char *logs[3];
    pid_t pools[3];
    for (int i = 0; i < 2; i++) {
        logs[i] = sl_xasprintf("%s.pool%d.log", s.dir, i);
        pools[i] = pool_start(cfg, s.url, q[i], logs[i]);
    }
    /* The third pool reads all three queues, on three masters. */
    char all[200];
    snprintf(all, sizeof all, "%s,%s,%s", q[2], q[0], q[1]);
    logs[2] = sl_xasprintf("%s.pool2.log", s.dir);
    pools[2] = pool_start(cfg, s.url, all, logs[2]);
    /* More while the pools run. */
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 50; k++)
            enqueue_noop(r, q[i], NULL);
    assert_exactly_once(q, 3, 450);
    for (int i = 0; i < 3; i++) {
        pool_stop(pools[i], logs[i]);
        long long len = -1, pending = -1;
        sl_err err;
        cr_assert_eq(sl_queue_depth(r, q[i], &len, &pending, &err), 0, "%s", err.msg);
        cr_assert(len == 0 && pending == 0, "%s: %lld entries, %lld pending", q[i], len, pending);
        unlink(logs[i]);
        free(logs[i]);
    }
    free(cfg);
    sl_redis_free(r);
    servers_stop(&s);
}

/* INFO replication field of the server at port, as a number (-1 if absent). */
typedef struct synced {
    int master, replica;
    long long offset;
} synced;

static bool replica_caught_up(void *arg)
{
    synced *s = arg;
    return info_number(s->replica, "slave_repl_offset:") >= s->offset;
}

/* Waits until replica has everything master wrote so far. */
static void wait_replicated(int master, int replica)
{
    synced s = { master, replica, info_number(master, "master_repl_offset:") };
    cr_assert(s.offset > 0);
    cr_assert(th_wait(replica_caught_up, &s, 30000), "replica %d did not catch up with %d",
              replica, master);
}

static bool is_master_now(void *arg)
{
    int port = *(int *)arg;
    sl_redis *n = connect_node(port);
    const char *argv[] = { "ROLE" };
    sl_err err;
    redisReply *rep = sl_redis_command(n, 1, argv, NULL, &err);
    bool yes = rep && rep->type == REDIS_REPLY_ARRAY && strcmp(rep->element[0]->str, "master") == 0;
    if (rep)
        freeReplyObject(rep);
    sl_redis_free(n);
    return yes;
}

/* Enqueues n jobs, reconnecting (boundedly) while the servers recover. */
static void enqueue_through(const char *url, const char *queue, int n)
{
    sl_redis *r = NULL;
    for (int done = 0, tries = 0; done < n;) {
        sl_err err;
        if (r == NULL)
            r = sl_redis_connect(url, 2000, &err);
        char id[37];
        sl_jobid_new(id);
        sl_job job = { .id = id, .kind = "noop", .queue = (char *)queue, .attempt = 1,
                       .enqueued_at = sl_now_ms() };
        if (r && sl_queue_enqueue(r, &job, &err) == 0) {
            done++;
            continue;
        }
        cr_assert(++tries < 300, "cannot enqueue after 300 tries: %s", err.msg);
        if (r && sl_redis_broken(r)) {
            sl_redis_free(r);
            r = NULL;
        }
        usleep(100000);
    }
    sl_redis_free(r);
}

Test(cluster, a_master_killed_fails_over_and_the_pool_reconnects)
{
    th_migrate();
    servers s;
    servers_start(&s, "cluster");
    sl_redis *r = connect_url(s.url);
    char q[1][64];
    queues_on_masters(r, q, 1);
    int master = master_port(r, q[0]);
    int replica = (int)info_number(master, "slave0:ip=127.0.0.1,port=");
    cr_assert(replica > 0, "master %d has no replica", master);
    sl_redis_free(r);
    char *cfg = pool_config();
    char *log = sl_xasprintf("%s.pool.log", s.dir);
    pid_t pool = pool_start(cfg, s.url, q[0], log);
    enqueue_through(s.url, q[0], 100);
    assert_exactly_once(q, 1, 100);
    /* Acknowledged and replicated: these survive the failover. */
    enqueue_through(s.url, q[0], 100);
    wait_replicated(master, replica);
    servers_kill(&s, master);
    cr_assert(th_wait(is_master_now, &replica, 60000), "replica %d was not promoted", replica);
    enqueue_through(s.url, q[0], 100);
    assert_exactly_once(q, 1, 300);
    /* The same pool, never restarted, ran the jobs enqueued after the
     * failover: it found the new master by itself. */
    pool_stop(pool, log);
    unlink(log);
    free(log);
    free(cfg);
    servers_stop(&s);
}

Test(cluster, sentinel_failover_the_pool_follows_the_new_master)
{
    th_migrate();
    servers s;
    servers_start(&s, "sentinel");
    int master = s.ports[0], replica = s.ports[1];
    sl_redis *r = connect_url(s.url);
    char addr[300];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", master);
    cr_assert_str_eq(sl_redis_address(r), addr);
    cr_assert(!sl_redis_is_cluster(r));
    sl_redis_free(r);
    char q[1][64];
    th_name(q[0], sizeof q[0], "sq");
    char *cfg = pool_config();
    char *log = sl_xasprintf("%s.pool.log", s.dir);
    pid_t pool = pool_start(cfg, s.url, q[0], log);
    enqueue_through(s.url, q[0], 100);
    assert_exactly_once(q, 1, 100);
    enqueue_through(s.url, q[0], 100);
    wait_replicated(master, replica);
    servers_kill(&s, master);
    cr_assert(th_wait(is_master_now, &replica, 60000), "the sentinels did not promote %d", replica);
    enqueue_through(s.url, q[0], 100);
    assert_exactly_once(q, 1, 300);
    r = connect_url(s.url);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", replica);
    cr_assert_str_eq(sl_redis_address(r), addr, "the sentinels named %s", sl_redis_address(r));
    sl_redis_free(r);
    pool_stop(pool, log);
    unlink(log);
    free(log);
    free(cfg);
    servers_stop(&s);
}

/* wait_replicas: an enqueue returns only once the replica has the job; a
 * replica that does not answer turns the enqueue into a clear error (the
 * job is on the master), and the connection stays usable. */
Test(cluster, wait_replicas_holds_an_enqueue_until_a_replica_has_it)
{
    servers s;
    servers_start(&s, "sentinel");
    int master = s.ports[0], replica = s.ports[1];
    char q[64];
    th_name(q, sizeof q, "wq");
    char *url = sl_xasprintf("redis://127.0.0.1:%d?wait_replicas=1&wait_timeout=5s", master);
    sl_err err;
    wait_replica_online(master);
    for (int i = 1; i <= 20; i++) {
        cr_assert_eq(enqueue_once(url, q, &err), 0, "%s", err.msg);
        /* No waiting for replication here: WAIT already did. */
        cr_assert_eq(xlen_on(replica, q, &err), i, "the replica lacks job %d when the enqueue returned", i);
    }
    free(url);
    /* The replica stops answering: the enqueue fails, saying why. */
    pid_t rp = node_pid(replica);
    cr_assert_eq(kill(rp, SIGSTOP), 0);
    url = sl_xasprintf("redis://127.0.0.1:%d?wait_replicas=1&wait_timeout=300ms", master);
    int rc = enqueue_once(url, q, &err);
    cr_assert_eq(kill(rp, SIGCONT), 0);
    cr_assert_eq(rc, -1, "the enqueue succeeded with no replica answering");
    cr_assert_eq(err.code, SL_EREDIS);
    cr_assert(strstr(err.msg, "0 of the 1 replicas") && strstr(err.msg, "300 ms") &&
              strstr(err.msg, "same job id again is safe"), "%s", err.msg);
    cr_assert_eq(xlen_on(master, q, &err), 21, "the job is not on the master");
    free(url);
    /* More replicas than there are: never enough. */
    url = sl_xasprintf("redis://127.0.0.1:%d?wait_replicas=2&wait_timeout=100ms", master);
    cr_assert_eq(enqueue_once(url, q, &err), -1);
    cr_assert(strstr(err.msg, "1 of the 2 replicas"), "%s", err.msg);
    free(url);
    /* Without the option nothing waits (and nothing fails) while the
     * replica is stopped. */
    cr_assert_eq(kill(rp, SIGSTOP), 0);
    url = sl_xasprintf("redis://127.0.0.1:%d", master);
    rc = enqueue_once(url, q, &err);
    cr_assert_eq(kill(rp, SIGCONT), 0);
    cr_assert_eq(rc, 0, "%s", err.msg);
    free(url);
    servers_stop(&s);
}

/* ---- resharding ------------------------------------------------------------- */

/* Runs a command on a node, failing the test on an error reply. */
static redisReply *on_node(sl_redis *n, int argc, const char **argv)
{
    sl_err err;
    redisReply *rep = sl_redis_command(n, argc, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    return rep;
}

static void node_id(sl_redis *n, char id[64])
{
    const char *argv[] = { "CLUSTER", "MYID" };
    redisReply *rep = on_node(n, 2, argv);
    snprintf(id, 64, "%s", rep->str);
    freeReplyObject(rep);
}

static void setslot(sl_redis *n, int slot, const char *how, const char *id)
{
    char s[16];
    snprintf(s, sizeof s, "%d", slot);
    const char *argv[] = { "CLUSTER", "SETSLOT", s, how, id };
    freeReplyObject(on_node(n, 5, argv));
}

/* Moves the keys of slot from src to the node at dst_port, a few at a
 * time and with pauses, so that traffic meets a slot half moved. */
static int migrate_keys(sl_redis *src, int slot, int dst_port)
{
    char s[16], port[16];
    snprintf(s, sizeof s, "%d", slot);
    snprintf(port, sizeof port, "%d", dst_port);
    int moved = 0;
    for (;;) {
        const char *get[] = { "CLUSTER", "GETKEYSINSLOT", s, "1" };
        redisReply *keys = on_node(src, 4, get);
        if (keys->elements == 0) {
            freeReplyObject(keys);
            return moved;
        }
        const char *mig[] = { "MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS",
                              keys->element[0]->str };
        freeReplyObject(on_node(src, 8, mig));
        freeReplyObject(keys);
        moved++;
        usleep(300000);
    }
}

Test(cluster, a_slot_migrated_under_traffic_loses_nothing_and_runs_nothing_twice)
{
    th_migrate();
    servers s;
    servers_start(&s, "cluster");
    sl_redis *r = connect_url(s.url);
    char q[2][64];
    queues_on_masters(r, q, 2);
    int slot = sl_redis_keyslot(q[0], strlen(q[0]));
    int src_port = master_port(r, q[0]), dst_port = master_port(r, q[1]);
    for (int k = 0; k < 100; k++)
        enqueue_noop(r, q[0], NULL);
    char *cfg = pool_config();
    char *log = sl_xasprintf("%s.pool.log", s.dir);
    pid_t pool = pool_start(cfg, s.url, q[0], log);
    /* A producer enqueueing all along, through its own connection. */
    pid_t producer = fork();
    cr_assert(producer >= 0);
    if (producer == 0) {
        sl_err err;
        sl_redis *p = sl_redis_connect(s.url, 5000, &err);
        for (int k = 0; p && k < 300; k++) {
            char id[37];
            sl_jobid_new(id);
            sl_job job = { .id = id, .kind = "noop", .queue = q[0], .attempt = 1,
                           .enqueued_at = sl_now_ms() };
            if (sl_queue_enqueue(p, &job, &err) < 0) {
                fprintf(stderr, "producer: %s\n", err.msg);
                _exit(1);
            }
            usleep(10000);
        }
        if (p == NULL)
            _exit(2);
        long moved, asked;
        sl_redis_redirections(p, &moved, &asked);
        fprintf(stderr, "producer: followed %ld MOVED and %ld ASK redirections\n", moved, asked);
        _exit(moved > 0 && asked > 0 ? 0 : 3);
    }
    sl_redis *src = connect_node(src_port), *dst = connect_node(dst_port);
    char src_id[64], dst_id[64];
    node_id(src, src_id);
    node_id(dst, dst_id);
    usleep(300000);
    setslot(dst, slot, "IMPORTING", src_id);
    setslot(src, slot, "MIGRATING", dst_id);
    usleep(500000);   /* new keys of the slot go to the target (ASK) meanwhile */
    cr_assert_gt(migrate_keys(src, slot, dst_port), 0, "the queue had no keys to move");
    setslot(dst, slot, "NODE", dst_id);
    setslot(src, slot, "NODE", dst_id);
    for (int i = 0; i < 3; i++) {
        if (s.ports[i] == src_port || s.ports[i] == dst_port)
            continue;
        sl_redis *other = connect_node(s.ports[i]);
        setslot(other, slot, "NODE", dst_id);
        sl_redis_free(other);
    }
    int status = -1;
    cr_assert_eq(waitpid(producer, &status, 0), producer);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 3,
              "the producer met no MOVED or no ASK: the slot moved too fast to test it");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the producer failed (%d)", status);
    assert_exactly_once(q, 1, 400);
    /* The queue now lives on the target: asked directly, it answers. */
    sl_err err;
    cr_assert_geq(xlen_on(dst_port, q[0], &err), 0, "%s", err.msg);
    cr_assert_eq(xlen_on(src_port, q[0], &err), -1);
    cr_assert(strstr(err.msg, "MOVED"), "%s", err.msg);
    pool_stop(pool, log);
    long long len = -1, pending = -1;
    cr_assert_eq(sl_queue_depth(r, q[0], &len, &pending, &err), 0, "%s", err.msg);
    cr_assert(len == 0 && pending == 0, "%lld entries, %lld pending", len, pending);
    sl_redis_free(src);
    sl_redis_free(dst);
    sl_redis_free(r);
    unlink(log);
    free(log);
    free(cfg);
    servers_stop(&s);
}

Test(cluster, scan_walks_every_master)
{
    servers s;
    servers_start(&s, "cluster");
    sl_redis *r = connect_url(s.url);
    char q[3][64];
    queues_on_masters(r, q, 3);
    sl_err err;
    for (int i = 0; i < 3; i++) {
        char key[SL_KEY_MAX];
        snprintf(key, sizeof key, "sluice:worker:%s", q[i]);
        const char *set[] = { "SET", key, "{}", "EX", "60" };
        redisReply *rep = sl_redis_command(r, 5, set, NULL, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        freeReplyObject(rep);
    }
    bool seen[3] = { false, false, false };
    char cursor[32] = "0";
    int pages = 0;
    do {
        const char *scan[] = { "SCAN", cursor, "MATCH", "sluice:worker:*", "COUNT", "1" };
        redisReply *page = sl_redis_command(r, 6, scan, NULL, &err);
        cr_assert_not_null(page, "%s", err.msg);
        cr_assert(strlen(page->element[0]->str) < sizeof cursor);
        snprintf(cursor, sizeof cursor, "%s", page->element[0]->str);
        for (size_t k = 0; k < page->element[1]->elements; k++)
            for (int i = 0; i < 3; i++)
                if (strstr(page->element[1]->element[k]->str, q[i]))
                    seen[i] = true;
        freeReplyObject(page);
        cr_assert_lt(++pages, 10000);
    } while (strcmp(cursor, "0") != 0);
    for (int i = 0; i < 3; i++)
        cr_assert(seen[i], "SCAN missed the key on the master of %s", q[i]);
    const char *bad[] = { "SCAN", "7-0" };
    cr_assert_null(sl_redis_command(r, 2, bad, NULL, &err));
    cr_assert(strstr(err.msg, "bad cursor"), "%s", err.msg);
    sl_redis_free(r);
    servers_stop(&s);
}
