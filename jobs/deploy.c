/* deploy.c: the `deploy` kind.  args.target names a target configured under
 * deploy.targets (lib/config_jobs.h); the job's arguments only fill in
 * values.  docs/jobs.md is the user's description.
 *
 * command targets: the configured argv runs with fork + execve (never a
 * shell), in the configured directory, in a process group of its own, with
 * a small fixed environment plus SLUICE_JOB_ID, SLUICE_TARGET and
 * SLUICE_ARG_<NAME> for each scalar argument, as deploy.run_as when the
 * pool runs as root (the account is resolved in the parent; the child only
 * makes async-signal-safe calls: setgroups, setgid, setuid, then checks
 * that root cannot be regained).  The output is recorded as text: NUL
 * bytes and invalid UTF-8 become U+FFFD, counted in log_replaced.  stdout and stderr share one
 * pipe; the last output_limit bytes are kept for the result.  When the job's
 * timeout passes or the job is cancelled the whole group is SIGKILLed; when
 * the command exits, whatever it left running in its group is killed too,
 * so no process outlives the job.  Exit status 0 is success.  A line
 * `SLUICE_DEPLOY_URL=<url>` in the output is reported as the deployment URL.
 *
 * webhook targets: the job is POSTed as JSON, signed with
 * X-Sluice-Signature: sha256=HMAC-SHA256(secret, body) when secret_env is
 * set, with Idempotency-Key: <job id>.  2xx succeeds (a JSON answer's `url`
 * or `deployment_url` is reported), 4xx fails permanently (SL_EPERMANENT:
 * the request itself is wrong, retrying cannot help), 5xx, timeouts and
 * connection errors fail retryably (SL_EJOB).  With health_url set, it is
 * then polled until it answers 2xx or health_timeout passes. */
#include "args.h"
#include "clock.h"
#include "config_jobs.h"
#include "http.h"
#include "jobctx.h"
#include "json.h"
#include "kind.h"
#include "mem.h"
#include "numfmt.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define URL_PREFIX "SLUICE_DEPLOY_URL="
#define LINE_MAX_LEN 2048
#define DRAIN_MS 1000          /* output still read after the command exits */
#define ARG_NAME_MAX 64

/* ---- environment ---- */

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Appends SLUICE_ARG_<NAME>=value for a scalar; non-scalars are skipped. */
static int env_arg(char ***env, size_t *n, const msgpack_object *k, const msgpack_object *v,
                   sl_err *err)
{
    if (k->type != MSGPACK_OBJECT_STR)
        return sl_err_set(err, SL_EINVAL, "argument names must be strings");
    char name[ARG_NAME_MAX + 1];
    size_t len = k->via.str.size;
    if (len == 0 || len > ARG_NAME_MAX)
        return sl_err_set(err, SL_EINVAL, "argument name of %zu bytes cannot become an environment "
                          "variable (1-%d of A-Z a-z 0-9 _)", len, ARG_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = k->via.str.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            char shown[ARG_NAME_MAX * 4 + 1];
            sl_buf b = SL_BUF_INIT;
            sl_json_put_string(&b, k->via.str.ptr, len);
            snprintf(shown, sizeof shown, "%s", sl_buf_str(&b));
            sl_buf_free(&b);
            return sl_err_set(err, SL_EINVAL, "argument name %s cannot become an environment "
                              "variable (use A-Z a-z 0-9 _)", shown);
        }
        name[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    name[len] = '\0';
    char *entry;
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        if (memchr(v->via.str.ptr, '\0', v->via.str.size))
            return sl_err_set(err, SL_EINVAL, "argument '%.*s': contains a NUL byte", (int)len,
                              k->via.str.ptr);
        entry = sl_xasprintf("SLUICE_ARG_%s=%.*s", name, (int)v->via.str.size, v->via.str.ptr);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        entry = sl_xasprintf("SLUICE_ARG_%s=%llu", name, (unsigned long long)v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        entry = sl_xasprintf("SLUICE_ARG_%s=%lld", name, (long long)v->via.i64);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        entry = sl_xasprintf("SLUICE_ARG_%s=%s", name, v->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        char num[SL_NUMFMT_MAX];
        entry = sl_xasprintf("SLUICE_ARG_%s=%s", name, sl_fmt_double(v->via.f64, num));
        break;
    }
    default:
        return 0;   /* maps, lists, binary, nil: not passed */
    }
    size_t plen = strchr(entry, '=') - entry + 1;
    for (size_t i = 0; i < *n; i++) {
        if (strncmp((*env)[i], entry, plen) == 0) {
            free(entry);
            return sl_err_set(err, SL_EINVAL, "arguments give SLUICE_ARG_%s twice (names differ "
                              "only in case)", name);
        }
    }
    (*env)[(*n)++] = entry;
    return 0;
}

/* The command's whole environment: a fixed PATH and locale, HOME, the
 * job's values; nothing of the worker's own. */
static char **build_env(const sl_job_ctx *ctx, const sl_deploy_target *t, const char *home, sl_err *err)
{
    uint32_t nargs = ctx->args->via.map.size;
    char **env = sl_xcalloc(nargs + 9, sizeof *env);
    size_t n = 0;
    env[n++] = sl_xstrdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    env[n++] = sl_xstrdup("LC_ALL=C.UTF-8");
    env[n++] = sl_xasprintf("HOME=%s", home);
    env[n++] = sl_xasprintf("SLUICE_JOB_ID=%s", ctx->job->id);
    env[n++] = sl_xasprintf("SLUICE_JOB_ATTEMPT=%lld", (long long)ctx->job->attempt);
    env[n++] = sl_xasprintf("SLUICE_TARGET=%s", t->name);
    for (uint32_t i = 0; i < nargs; i++) {
        if (env_arg(&env, &n, &ctx->args->via.map.ptr[i].key, &ctx->args->via.map.ptr[i].val, err) < 0) {
            free_strv(env);
            return NULL;
        }
    }
    return env;
}

/* ---- command ---- */

typedef struct capture {
    sl_buf tail;       /* last `limit` bytes (kept within 2*limit while reading) */
    size_t limit;
    size_t total;      /* bytes read in all */
    char line[LINE_MAX_LEN];
    size_t line_len;
    char *url;         /* last SLUICE_DEPLOY_URL= seen, owned */
} capture;

static void capture_bytes(capture *c, const char *data, size_t n)
{
    c->total += n;
    sl_buf_append(&c->tail, data, n);
    if (c->tail.len > 2 * c->limit) {
        memmove(c->tail.data, c->tail.data + c->tail.len - c->limit, c->limit);
        c->tail.len = c->limit;
        c->tail.data[c->limit] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            if (c->line_len < sizeof c->line - 1)
                c->line[c->line_len++] = data[i];
            continue;
        }
        c->line[c->line_len] = '\0';
        if (strncmp(c->line, URL_PREFIX, strlen(URL_PREFIX)) == 0) {
            free(c->url);
            c->url = sl_xstrdup(c->line + strlen(URL_PREFIX));
        }
        c->line_len = 0;
    }
}

/* The kept tail.  When the output was cut, the cut may fall inside a UTF-8
 * character: its stray continuation bytes (at most 3) are skipped. */
static const char *capture_tail(const capture *c, size_t *n)
{
    size_t len = c->tail.len < c->limit ? c->tail.len : c->limit;
    const char *p = c->tail.data ? c->tail.data + c->tail.len - len : "";
    for (int i = 0; i < 3 && c->total > len && len > 0 && ((unsigned char)*p & 0xc0) == 0x80; i++)
        p++, len--;
    *n = len;
    return p;
}

/* What the child reports through its error pipe when it cannot exec. */
typedef struct exec_failure {
    int stage;    /* 1: chdir, 2: execve, 3: dup2, 4: switching user */
    int errnum;
} exec_failure;

#define GROUPS_MAX 64

/* The account a command runs as (deploy.run_as), resolved in the parent:
 * the child may call only async-signal-safe functions. */
typedef struct run_as {
    bool change;              /* switch before execve */
    uid_t uid;
    gid_t gid;
    gid_t groups[GROUPS_MAX]; /* supplementary groups */
    int ngroups;
    char home[256];           /* HOME for the command */
} run_as;

/* Resolves deploy.run_as.  Without it, or when the pool already runs as
 * that user, nothing changes.  Only root can switch: an unprivileged pool
 * configured to run commands as someone else fails the job (SL_EPERMANENT). */
static int resolve_run_as(const sl_jobs_config *jc, run_as *ra, sl_err *err)
{
    memset(ra, 0, sizeof *ra);
    snprintf(ra->home, sizeof ra->home, "/");
    if (jc->deploy.run_as_user == NULL)
        return 0;
    char buf[16384];
    struct passwd pw, *pwp = NULL;
    int e = getpwnam_r(jc->deploy.run_as_user, &pw, buf, sizeof buf, &pwp);
    if (pwp == NULL)
        return sl_err_set(err, SL_EPERMANENT, "deploy.run_as: no user '%s'%s%s", jc->deploy.run_as_user,
                          e ? ": " : "", e ? strerror(e) : "");
    if (pw.pw_uid == 0)
        return sl_err_set(err, SL_EPERMANENT, "deploy.run_as: user '%s' is root (uid 0): refused",
                          jc->deploy.run_as_user);
    ra->uid = pw.pw_uid;
    ra->gid = pw.pw_gid;
    if (pw.pw_dir && pw.pw_dir[0] == '/')
        snprintf(ra->home, sizeof ra->home, "%s", pw.pw_dir);
    if (jc->deploy.run_as_group) {
        char gbuf[16384];
        struct group gr, *grp = NULL;
        e = getgrnam_r(jc->deploy.run_as_group, &gr, gbuf, sizeof gbuf, &grp);
        if (grp == NULL)
            return sl_err_set(err, SL_EPERMANENT, "deploy.run_as: no group '%s'%s%s", jc->deploy.run_as_group,
                              e ? ": " : "", e ? strerror(e) : "");
        if (gr.gr_gid == 0)
            return sl_err_set(err, SL_EPERMANENT, "deploy.run_as: group '%s' is root (gid 0): refused",
                              jc->deploy.run_as_group);
        ra->gid = gr.gr_gid;
    }
    if (geteuid() != 0) {
        if (geteuid() == ra->uid && getegid() == ra->gid)
            return 0;   /* already that account */
        return sl_err_set(err, SL_EPERMANENT, "deploy.run_as: switching to user '%s' needs the worker pool "
                          "to run as root (it runs as uid %ld)", jc->deploy.run_as_user, (long)geteuid());
    }
    /* supplementary groups: the user's own, never root's */
    int n = GROUPS_MAX;
    if (getgrouplist(jc->deploy.run_as_user, ra->gid, ra->groups, &n) < 0)
        n = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (ra->groups[i] != 0)
            ra->groups[k++] = ra->groups[i];
    }
    if (k == 0)
        ra->groups[k++] = ra->gid;
    ra->ngroups = k;
    ra->change = true;
    return 0;
}

/* In the child: become ra's account for good, and check that it held:
 * the ids are the account's and root cannot be regained. */
static int switch_user(const run_as *ra)
{
    if (setgroups((size_t)ra->ngroups, ra->groups) < 0 || setgid(ra->gid) < 0 || setuid(ra->uid) < 0)
        return -1;
    if (getuid() != ra->uid || geteuid() != ra->uid || getgid() != ra->gid || getegid() != ra->gid)
        return errno = EPERM, -1;
    if (setuid(0) == 0 || seteuid(0) == 0)
        return errno = EPERM, -1;
    return 0;
}

/* The child: from fork to execve.  Only async-signal-safe calls.  A failure
 * is written to err_fd (close-on-exec: a successful execve closes it, and
 * the parent reads end-of-file). */
static void child_exec(const sl_deploy_target *t, const run_as *ra, char **env, int out_fd, int null_fd,
                       int err_fd)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++)
        (void)sigaction(s, &sa, NULL);   /* fails harmlessly for KILL, STOP and reserved signals */
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    (void)setpgid(0, 0);
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    exec_failure f = { 3, 0 };
    if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        goto fail;
    f.stage = 4;
    if (ra->change && switch_user(ra) < 0)
        goto fail;
    f.stage = 1;   /* as the command's user: it must be allowed into cwd */
    if (chdir(t->cwd) < 0)
        goto fail;
    /* everything but 0-2 and the error pipe is closed; the latter at execve */
    if (err_fd > 3)
        (void)close_range(3, (unsigned)err_fd - 1, 0);
    (void)close_range((unsigned)err_fd + 1, ~0U, 0);
    f.stage = 2;
    execve(t->argv[0], t->argv, env);
fail:
    f.errnum = errno;
    (void)!write(err_fd, &f, sizeof f);
    _exit(127);
}

static int run_command(sl_job_ctx *ctx, const sl_deploy_target *t, sl_err *err)
{
    int64_t t0 = sl_monotonic_ms();
    int64_t timeout = sl_jobctx_timeout_ms(ctx);
    run_as ra;
    if (resolve_run_as(sl_config_jobs_of(ctx->cfg), &ra, err) < 0)
        return sl_err_wrap(err, "deploy target '%s'", t->name);
    char **env = build_env(ctx, t, ra.home, err);
    if (env == NULL)
        return -1;
    int fds[2] = { -1, -1 }, efds[2] = { -1, -1 }, null_fd = -1, rc = -1;
    capture cap = { .tail = SL_BUF_INIT, .limit = (size_t)t->output_limit };
    if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(efds, O_CLOEXEC) < 0) {
        sl_err_set(err, SL_EIO, "pipe2: %s", strerror(errno));
        goto cleanup;
    }
    if ((null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        sl_err_set(err, SL_EIO, "open /dev/null: %s", strerror(errno));
        goto cleanup;
    }
    pid_t pid = fork();
    if (pid < 0) {
        sl_err_set(err, SL_EIO, "fork: %s", strerror(errno));
        goto cleanup;
    }
    if (pid == 0)
        child_exec(t, &ra, env, fds[1], null_fd, efds[1]);
    (void)setpgid(pid, pid);   /* also in the parent: no window where a kill misses the group */
    close(fds[1]);
    fds[1] = -1;
    close(efds[1]);
    efds[1] = -1;
    exec_failure ef;
    ssize_t en;
    while ((en = read(efds[0], &ef, sizeof ef)) < 0 && errno == EINTR)
        ;
    if (en == (ssize_t)sizeof ef) {
        (void)waitpid(pid, NULL, 0);
        if (ef.stage == 1)
            sl_err_set(err, SL_EJOB, "deploy target '%s': cannot enter its working directory %s: %s",
                       t->name, t->cwd, strerror(ef.errnum));
        else if (ef.stage == 4)
            sl_err_set(err, SL_EPERMANENT, "deploy target '%s': cannot switch to deploy.run_as (uid %ld, "
                       "gid %ld): %s", t->name, (long)ra.uid, (long)ra.gid, strerror(ef.errnum));
        else if (ef.stage == 2)
            sl_err_set(err, SL_EJOB, "deploy target '%s': cannot run %s: %s", t->name, t->argv[0],
                       strerror(ef.errnum));
        else
            sl_err_set(err, SL_EJOB, "deploy target '%s': dup2 in the child: %s", t->name,
                       strerror(ef.errnum));
        goto cleanup;
    }

    bool exited = false, eof = false, timed_out = false, cancelled = false;
    int status = 0;
    int64_t drain_until = 0;
    while (!(exited && (eof || sl_monotonic_ms() >= drain_until))) {
        if (!eof) {
            struct pollfd p = { fds[0], POLLIN, 0 };
            int pr = poll(&p, 1, 50);
            if (pr > 0) {
                char chunk[4096];
                ssize_t r = read(fds[0], chunk, sizeof chunk);
                if (r > 0)
                    capture_bytes(&cap, chunk, (size_t)r);
                else if (r == 0 || errno != EINTR)
                    eof = true;
            }
        } else {
            sl_sleep_ms(20);
        }
        if (exited)
            continue;
        siginfo_t si;
        memset(&si, 0, sizeof si);
        /* Peek without reaping, so the group id cannot be reused before the kill below. */
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
            (void)kill(-pid, SIGKILL);          /* anything it left behind */
            if (waitpid(pid, &status, 0) < 0) {
                sl_err_set(err, SL_EIO, "waitpid: %s", strerror(errno));
                goto cleanup;
            }
            exited = true;
            drain_until = sl_monotonic_ms() + DRAIN_MS;
            continue;
        }
        if (!timed_out && !cancelled && sl_monotonic_ms() - t0 >= timeout) {
            timed_out = true;
            (void)kill(-pid, SIGKILL);
        }
        if (!timed_out && !cancelled && sl_jobctx_cancelled(ctx)) {
            cancelled = true;
            (void)kill(-pid, SIGKILL);
        }
    }
    int64_t ms = sl_monotonic_ms() - t0;
    size_t tail_len;
    const char *tail = capture_tail(&cap, &tail_len);
    /* the error message quotes the end of the output */
    size_t quote = tail_len < 200 ? tail_len : 200;
    char excerpt[256];
    sl_jobctx_excerpt(tail + tail_len - quote, quote, excerpt, sizeof excerpt);
    if (timed_out) {
        sl_err_set(err, SL_EJOB, "deploy target '%s': command timed out after %lld ms; its process "
                   "group was killed; output ends: %s", t->name, (long long)timeout, excerpt);
        goto cleanup;
    }
    if (cancelled) {
        sl_err_set(err, SL_EJOB, "deploy target '%s': cancelled; the command's process group was killed",
                   t->name);
        goto cleanup;
    }
    if (WIFSIGNALED(status)) {
        sl_err_set(err, SL_EJOB, "deploy target '%s': command killed by signal %d; output ends: %s",
                   t->name, WTERMSIG(status), excerpt);
        goto cleanup;
    }
    int code = WEXITSTATUS(status);
    if (code != 0) {
        sl_err_set(err, SL_EJOB, "deploy target '%s': command exited with status %d; output ends: %s",
                   t->name, code, excerpt);
        goto cleanup;
    }
    sl_jout o;
    sl_jout_begin(&o, ctx->outputs);
    sl_jout_str(&o, "target", t->name);
    sl_jout_str(&o, "type", "command");
    sl_jout_int(&o, "duration_ms", ms);
    sl_jout_int(&o, "exit_code", code);
    sl_jout_text(&o, "url", cap.url, cap.url ? strlen(cap.url) : 0);
    size_t replaced = sl_jout_text(&o, "log_tail", tail, tail_len);
    sl_jout_int(&o, "log_bytes", (int64_t)cap.total);
    sl_jout_int(&o, "log_replaced", (int64_t)replaced);
    if (replaced)
        sl_jout_str(&o, "log_note", "the output held NUL bytes or invalid UTF-8: each such byte "
                    "is shown as U+FFFD in log_tail (log_replaced counts them)");
    sl_jout_end(&o);
    rc = 0;

cleanup:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    for (int i = 0; i < 2; i++) {
        if (efds[i] >= 0)
            close(efds[i]);
    }
    if (null_fd >= 0)
        close(null_fd);
    free(cap.url);
    sl_buf_free(&cap.tail);
    free_strv(env);
    return rc;
}

/* ---- webhook ---- */

static int health_check(sl_job_ctx *ctx, const sl_deploy_target *t, int64_t job_end, long *last,
                        sl_err *err)
{
    int64_t end = sl_monotonic_ms() + t->health_timeout_ms;
    if (end > job_end)
        end = job_end;
    char reason[300] = "no answer yet";
    for (;;) {
        int64_t left = end - sl_monotonic_ms();
        if (left <= 0)
            break;
        sl_http_resp resp = { 0, SL_BUF_INIT };
        sl_err e;
        sl_http_req req = { .method = "GET", .url = t->health_url,
                            .timeout_ms = left < t->request_timeout_ms ? left : t->request_timeout_ms,
                            .max_response = 256, .cancelled = ctx->cancelled };
        if (sl_http_request(&req, &resp, &e) == 0) {
            *last = resp.status;
            snprintf(reason, sizeof reason, "last answer %ld", resp.status);
            sl_buf_free(&resp.body);
            if (resp.status >= 200 && resp.status < 300)
                return 0;
        } else {
            if (*last == 0)   /* an answer, once there was one, says more than a late timeout */
                snprintf(reason, sizeof reason, "%s", e.msg);
            sl_buf_free(&resp.body);
        }
        if (sl_jobctx_cancelled(ctx))
            return sl_err_set(err, SL_EJOB, "deploy target '%s': cancelled during the health check",
                              t->name);
        int64_t nap = end - sl_monotonic_ms();
        if (nap <= 0)
            break;
        sl_sleep_ms(nap < t->health_interval_ms ? nap : t->health_interval_ms);
    }
    return sl_err_set(err, SL_EJOB, "deploy target '%s': health check %s did not answer 2xx within "
                      "%lld ms (%s)", t->name, t->health_url, (long long)t->health_timeout_ms, reason);
}

static int run_webhook(sl_job_ctx *ctx, const sl_deploy_target *t, sl_err *err)
{
    int64_t t0 = sl_monotonic_ms();
    int64_t job_end = t0 + sl_jobctx_timeout_ms(ctx);
    sl_buf body = SL_BUF_INIT;
    sl_http_resp resp = { 0, SL_BUF_INIT };
    char *hdrs[5] = { NULL };
    char *url = NULL;
    int rc = -1;

    if (sl_jobctx_job_json(ctx, &body, err) < 0)
        goto cleanup;

    size_t nh = 0;
    hdrs[nh++] = sl_xstrdup("Content-Type: application/json");
    hdrs[nh++] = sl_xasprintf("Idempotency-Key: %s", ctx->job->id);
    if (t->secret_env || t->secret_file) {
        char what[128];
        snprintf(what, sizeof what, "deploy.targets.%s.secret", t->name);
        char *secret = sl_jobctx_secret(t->secret_env, t->secret_file, what, err);
        if (secret == NULL)
            goto cleanup;
        unsigned char mac[SL_SHA256_LEN];
        char hex[SL_SHA256_HEX];
        sl_hmac_sha256(secret, strlen(secret), body.data, body.len, mac);
        sl_jobctx_secret_free(secret);
        sl_sha256_hex(mac, hex);
        hdrs[nh++] = sl_xasprintf("X-Sluice-Signature: sha256=%s", hex);
    }
    int64_t left = job_end - sl_monotonic_ms();
    sl_http_req req = { .method = "POST", .url = t->url, .body = body.data, .body_len = body.len,
                        .headers = (const char *const *)hdrs,
                        .timeout_ms = left < t->request_timeout_ms ? left : t->request_timeout_ms,
                        .max_response = 65536, .cancelled = ctx->cancelled };
    if (sl_http_request(&req, &resp, err) < 0) {
        sl_err_wrap(err, "deploy target '%s'", t->name);
        goto cleanup;
    }
    char excerpt[200];
    sl_jobctx_excerpt(sl_buf_str(&resp.body), resp.body.len, excerpt, sizeof excerpt);
    if (resp.status >= 400 && resp.status < 500) {
        sl_err_set(err, SL_EPERMANENT, "deploy target '%s': webhook answered %ld (not retried): %s",
                   t->name, resp.status, excerpt);
        goto cleanup;
    }
    if (resp.status >= 500) {
        sl_err_set(err, SL_EJOB, "deploy target '%s': webhook answered %ld: %s", t->name,
                   resp.status, excerpt);
        goto cleanup;
    }
    if (resp.status < 200 || resp.status >= 300) {
        sl_err_set(err, SL_EPERMANENT, "deploy target '%s': webhook answered %ld, expected 2xx "
                   "(redirects are not followed)", t->name, resp.status);
        goto cleanup;
    }
    url = sl_http_json_member(&resp.body, "deployment_url");
    if (url == NULL)
        url = sl_http_json_member(&resp.body, "url");
    long health = 0;
    if (t->health_url && health_check(ctx, t, job_end, &health, err) < 0)
        goto cleanup;
    sl_jout o;
    sl_jout_begin(&o, ctx->outputs);
    sl_jout_str(&o, "target", t->name);
    sl_jout_str(&o, "type", "webhook");
    sl_jout_int(&o, "duration_ms", sl_monotonic_ms() - t0);
    sl_jout_int(&o, "http_status", resp.status);
    if (t->health_url)
        sl_jout_int(&o, "health_status", health);
    sl_jout_text(&o, "url", url, url ? strlen(url) : 0);
    size_t replaced = sl_jout_text(&o, "log_tail", resp.body.data ? resp.body.data : "",
                                   resp.body.len < 4096 ? resp.body.len : 4096);
    sl_jout_int(&o, "log_replaced", (int64_t)replaced);
    if (replaced)
        sl_jout_str(&o, "log_note", "the answer held NUL bytes or invalid UTF-8: each such byte "
                    "is shown as U+FFFD in log_tail (log_replaced counts them)");
    sl_jout_end(&o);
    rc = 0;

cleanup:
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        free(hdrs[i]);
    free(url);
    sl_buf_free(&body);
    sl_buf_free(&resp.body);
    return rc;
}

static int run_deploy(sl_job_ctx *ctx, sl_err *err)
{
    char *name;
    if (sl_args_str(ctx->args, "target", true, &name, err) < 0)
        return -1;
    const sl_deploy_target *t = sl_config_deploy_target(sl_config_jobs_of(ctx->cfg), name);
    if (t == NULL) {
        sl_buf names = SL_BUF_INIT;
        for (size_t i = 0; i < sl_config_jobs_of(ctx->cfg)->deploy.ntargets; i++)
            sl_buf_printf(&names, "%s%s", i ? ", " : "", sl_config_jobs_of(ctx->cfg)->deploy.targets[i].name);
        char shown[200];
        sl_err_set(err, SL_EINVAL, "argument 'target': no deploy target '%s' is configured "
                   "(configured: %s)", sl_jobctx_excerpt(name, strlen(name), shown, 80),
                   names.len ? names.data : "none");
        sl_buf_free(&names);
        free(name);
        return -1;
    }
    free(name);
    return t->type == SL_TARGET_COMMAND ? run_command(ctx, t, err) : run_webhook(ctx, t, err);
}

/* target picks the configured target; every other argument is passed on
 * to it as data (SLUICE_ARG_*, or the webhook's body). */
static const sl_kind_arg deploy_args[] = { { "target", true, NULL }, { NULL, false, NULL } };

/* deploy.targets.NAME.rate, when the target has one. */
static bool deploy_limit(const sl_job_ctx *ctx, char *name, size_t n, sl_rate *rate)
{
    char *target;
    sl_err err;
    if (sl_args_str(ctx->args, "target", true, &target, &err) < 0)
        return false;
    const sl_deploy_target *t = sl_config_deploy_target(sl_config_jobs_of(ctx->cfg), target);
    free(target);
    if (t == NULL || t->rate.count == 0)
        return false;
    snprintf(name, n, "deploy.targets.%s", t->name);
    *rate = t->rate;
    return true;
}

const sl_kind sl_kind_deploy = { "deploy", "runs a configured deploy command or webhook (args.target)",
                                 run_deploy, deploy_args, true, deploy_limit };
