/* test_config_jobs.c: the job kinds' sections of etc/sluice.yaml
 * (lib/config_jobs.c): every key read, the defaults, and errors that point
 * at the right line and column. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_jobs.h"
#include "config_sched.h"
#include "harness.h"

TH_REGISTER_CONFIG_SECTIONS

static char path[64];

static void setup(void)
{
    snprintf(path, sizeof path, "%s", "/tmp/sluice-cfgjobs-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    close(fd);
}

static void teardown(void)
{
    unlink(path);
}

TestSuite(config_jobs, .init = setup, .fini = teardown);

static sl_config *load(const char *text, sl_err *err)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return sl_config_load(path, err);
}

static void load_bad(const char *text, int line, int col, const char *why)
{
    sl_err err = { 0 };
    sl_config *cfg = load(text, &err);
    cr_assert_null(cfg, "accepted:\n%s", text);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, line, col);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"", err.msg, prefix);
    cr_assert(strstr(err.msg, why), "\"%s\" lacks \"%s\"", err.msg, why);
}

Test(config_jobs, defaults_configure_every_kind_off)
{
    sl_err err;
    sl_config *cfg = load("worker:\n  batch: 4\n", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    const sl_jobs_config *jc = sl_config_jobs_of(cfg);
    cr_assert_eq(jc->deploy.ntargets, 0);
    cr_assert_null(jc->import.root);
    cr_assert_eq(jc->import.nschemes, 0);
    cr_assert_eq(jc->import.max_bytes, 100 * 1024 * 1024);
    cr_assert_null(jc->codegen.template_root);
    cr_assert_null(jc->provision.admin_url_env);
    cr_assert_eq(jc->provision.nresources, 0);
    sl_config_free(cfg);
}

Test(config_jobs, every_key_is_read)
{
    sl_err err;
    sl_config *cfg = load(
        "deploy:\n"
        "  targets:\n"
        "    staging:\n"
        "      type: command\n"
        "      command: [/usr/local/bin/deploy, --env, staging]\n"
        "      cwd: /srv/app\n"
        "      output_limit: 4096\n"
        "      rate: 10/m\n"
        "    prod-hook:\n"
        "      type: webhook\n"
        "      url: https://deploy.example/hook\n"
        "      secret_env: DEPLOY_SECRET\n"
        "      health_url: https://shop.example/health\n"
        "      timeout: 10s\n"
        "      health_timeout: 5m\n"
        "      health_interval: 5s\n"
        "import:\n"
        "  root: /var/lib/sluice/imports\n"
        "  schemes: [https, file]\n"
        "  hosts: [assets.example, \"*.cdn.example\"]\n"
        "  file_root: /srv/drop\n"
        "  max_bytes: 1048576\n"
        "  connect_timeout: 3s\n"
        "  timeout: 2m\n"
        "  max_redirects: 2\n"
        "  database_url_env: IMPORT_DB\n"
        "  tables:\n"
        "    events: { table: analytics.events, columns: [id, at, kind], header: false }\n"
        "codegen:\n"
        "  template_root: /srv/templates\n"
        "  output_root: /srv/generated\n"
        "  max_bytes: 1000\n"
        "  max_files: 7\n"
        "provision:\n"
        "  admin_url_env: PROVISION_ADMIN_URL\n"
        "  resources: [postgres_schema, postgres_role]\n"
        "  password_dir: /var/lib/sluice/secrets\n"
        "  endpoints:\n"
        "    buckets: { url: \"https://infra.example/buckets\", secret_env: INFRA_TOKEN, timeout: 20s,"
        " rate: 500/h }\n",
        &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    const sl_jobs_config *jc = sl_config_jobs_of(cfg);
    const sl_deploy_target *t = sl_config_deploy_target(jc, "staging");
    cr_assert_not_null(t);
    cr_assert_eq(t->type, SL_TARGET_COMMAND);
    cr_assert_eq(t->argc, 3);
    cr_assert_str_eq(t->argv[0], "/usr/local/bin/deploy");
    cr_assert_null(t->argv[3]);
    cr_assert_str_eq(t->cwd, "/srv/app");
    cr_assert_eq(t->output_limit, 4096);
    cr_assert(t->rate.count == 10 && t->rate.period_ms == 60000);
    t = sl_config_deploy_target(jc, "prod-hook");
    cr_assert_eq(t->rate.count, 0, "no rate: unlimited");
    cr_assert_eq(t->type, SL_TARGET_WEBHOOK);
    cr_assert_str_eq(t->secret_env, "DEPLOY_SECRET");
    cr_assert_eq(t->request_timeout_ms, 10000);
    cr_assert_eq(t->health_timeout_ms, 300000);
    cr_assert_eq(t->health_interval_ms, 5000);
    cr_assert_null(sl_config_deploy_target(jc, "nope"));
    cr_assert_eq(jc->import.nschemes, 2);
    cr_assert_str_eq(jc->import.hosts[1], "*.cdn.example");
    cr_assert_eq(jc->import.max_bytes, 1048576);
    cr_assert_eq(jc->import.connect_timeout_ms, 3000);
    cr_assert_eq(jc->import.timeout_ms, 120000);
    cr_assert_eq(jc->import.max_redirects, 2);
    const sl_import_table *tb = sl_config_import_table(jc, "events");
    cr_assert_str_eq(tb->schema, "analytics");
    cr_assert_str_eq(tb->table, "events");
    cr_assert_eq(tb->ncolumns, 3);
    cr_assert_eq(tb->header, false);
    cr_assert_eq(jc->codegen.max_files, 7);
    cr_assert_eq(jc->provision.nresources, 2);
    const sl_provision_endpoint *e = sl_config_provision_endpoint(jc, "buckets");
    cr_assert_eq(e->timeout_ms, 20000);
    cr_assert_str_eq(e->secret_env, "INFRA_TOKEN");
    cr_assert(e->rate.count == 500 && e->rate.period_ms == 3600000);
    sl_config_free(cfg);
}

Test(config_jobs, errors_point_at_the_bad_key_or_value)
{
    load_bad("deploy:\n  targets:\n    t:\n      type: command\n      command: [/bin/true]\n      shell: yes\n",
             6, 7, "unknown key 'shell' in 'deploy.targets.t' (expected type, command, cwd");
    load_bad("deploy:\n  targets:\n    t:\n      type: command\n      command: [deploy.sh]\n",
             5, 16, "the program must be an absolute path");
    load_bad("deploy:\n  targets:\n    t:\n      type: command\n      command: \"/bin/deploy --all\"\n",
             5, 16, "must be a list");
    load_bad("deploy:\n  targets:\n    t:\n      type: shell\n", 4, 13, "must be command or webhook");
    load_bad("deploy:\n  targets:\n    t:\n      command: [/bin/true]\n", 3, 5, "needs 'type: command'");
    load_bad("deploy:\n  targets:\n    t:\n      type: webhook\n      url: ftp://x\n", 5, 12,
             "must be an http:// or https:// URL");
    load_bad("deploy:\n  targets:\n    t:\n      type: webhook\n      url: https://x\n      secret_env: \"$SECRET\"\n",
             6, 19, "must name an environment variable");
    load_bad("deploy:\n  targets:\n    \"a b\":\n      type: webhook\n", 3, 5, "deploy target name 'a b'");
    load_bad("deploy:\n  targets:\n    t:\n      type: command\n      command: [/bin/true]\n      cwd: relative\n",
             6, 12, "must be an absolute path");
    load_bad("deploy:\n  targets:\n    t:\n      type: webhook\n      url: https://x\n      cwd: /srv\n",
             6, 7, "'deploy.targets.t' is a webhook target: 'cwd' applies to command targets only");
    load_bad("deploy:\n  targets:\n    t:\n      type: command\n      command: [/bin/true]\n      url: https://x\n",
             6, 7, "'url' applies to webhook targets only");
    load_bad("deploy:\n  target: {}\n", 2, 3, "unknown key 'target' in 'deploy' (expected targets, run_as)");
    load_bad("import:\n  schemes: [https, ftp]\n", 2, 20, "'import.schemes[1]' must be http, https or file");
    load_bad("import:\n  hosts: [\"Evil Host\"]\n", 2, 11, "import.hosts[0]");
    load_bad("import:\n  max_bytes: 0\n", 2, 14, "import.max_bytes");
    load_bad("import:\n  tables:\n    t: { table: \"public.x; drop\" }\n", 3, 17, "must be TABLE or SCHEMA.TABLE");
    load_bad("import:\n  tables:\n    t: { columns: [a] }\n", 3, 5, "needs 'table'");
    load_bad("codegen:\n  template_root: /srv/t\n  outputs: /srv/o\n", 3, 3, "unknown key 'outputs' in 'codegen'");
    load_bad("provision:\n  resources: [postgres_schema, s3]\n", 2, 32, "'provision.resources[1]' must be");
    load_bad("provision:\n  endpoints:\n    e: { secret_env: X }\n", 3, 5, "needs 'url'");
    load_bad("deploy:\n  targets:\n    t:\n      type: command\n      command: [/bin/true]\n      rate: fast\n",
             6, 13, "'deploy.targets.t.rate'");
    load_bad("deploy:\n  targets:\n    t:\n      type: webhook\n      url: https://x\n      rate: 0/s\n",
             6, 13, "'deploy.targets.t.rate'");
    load_bad("provision:\n  endpoints:\n    e: { url: \"https://x\", rate: 10/d }\n", 3, 34,
             "'provision.endpoints.e.rate'");
}

Test(config_jobs, cross_key_rules)
{
    sl_err err = { 0 };
    cr_assert_null(load("import:\n  schemes: [file]\n", &err));
    cr_assert(strstr(err.msg, "allows 'file' but import.file_root is not set"), "%s", err.msg);
    cr_assert_null(load("codegen:\n  template_root: /srv/t\n", &err));
    cr_assert(strstr(err.msg, "codegen needs both template_root and output_root"), "%s", err.msg);
}

Test(config_jobs, the_shipped_configuration_loads)
{
    sl_err err;
    sl_config *cfg = sl_config_load(SLUICE_SOURCE_DIR "/etc/sluice.yaml", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    sl_config_free(cfg);
}

Test(config_jobs, secrets_addresses_ports_and_run_as_are_read_strictly)
{
    sl_err err;
    sl_config *cfg = load("deploy:\n  run_as: deployer:deploy\n  targets:\n    w:\n      type: webhook\n"
                          "      url: http://h/\n      secret_file: hook-key\n"
                          "import:\n  allow_addresses: [127.0.0.1/8, \"::1\", fd00::/8]\n  allow_ports: [8080]\n"
                          "  database_url_file: /run/secrets/db\n"
                          "codegen:\n  max_steps: 5000\n"
                          "provision:\n  admin_url_file: admin-url\n", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    const sl_jobs_config *jc = sl_config_jobs_of(cfg);
    cr_assert_str_eq(jc->deploy.run_as_user, "deployer");
    cr_assert_str_eq(jc->deploy.run_as_group, "deploy");
    cr_assert_str_eq(jc->deploy.targets[0].secret_file, "hook-key");
    cr_assert_eq(jc->import.nallow_addresses, 3);
    cr_assert_eq(jc->import.allow_addresses[0].prefix, 8);
    cr_assert_eq(jc->import.allow_addresses[0].addr[0], 127);
    cr_assert_eq(jc->import.allow_addresses[0].addr[3], 0, "host bits are cleared");
    cr_assert_eq(jc->import.allow_addresses[1].prefix, 128);
    cr_assert_eq(jc->import.nallow_ports, 1);
    cr_assert_eq(jc->import.allow_ports[0], 8080);
    cr_assert_str_eq(jc->import.database_url_file, "/run/secrets/db");
    cr_assert_eq(jc->codegen.max_steps, 5000);
    cr_assert_str_eq(jc->provision.admin_url_file, "admin-url");
    sl_config_free(cfg);
    cfg = load("worker:\n  batch: 4\n", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_eq(sl_config_jobs_of(cfg)->import.nallow_ports, 2, "default ports: 80 and 443");
    cr_assert_eq(sl_config_jobs_of(cfg)->import.allow_ports[0], 80);
    cr_assert_eq(sl_config_jobs_of(cfg)->import.nallow_addresses, 0);
    sl_config_free(cfg);
    load_bad("import:\n  allow_addresses: [127.0.0.1/33]\n", 2, 21, "an address or ADDRESS/PREFIX");
    load_bad("import:\n  allow_addresses: [localhost]\n", 2, 21, "an address or ADDRESS/PREFIX");
    load_bad("import:\n  allow_ports: [0]\n", 2, 17, "between 1 and 65535");
    load_bad("deploy:\n  run_as: root\n", 2, 11, "not root");
    load_bad("deploy:\n  run_as: \"x:root\"\n", 2, 11, "not root");
    load_bad("deploy:\n  targets:\n    w:\n      type: webhook\n      url: http://h/\n"
             "      secret_env: A\n      secret_file: /k\n", 3, 5, "give deploy.targets.w.secret_env or");
    load_bad("provision:\n  admin_url_file: ../x\n", 2, 19, "absolute path or the name of a credential");
}

Test(config_jobs, notify_section)
{
    sl_err err;
    sl_config *cfg = load("notify:\n"
                          "  channels:\n"
                          "    releases: { type: webhook, url: 'https://hooks.example.com/s', secret_env: HOOK_KEY }\n"
                          "    chat: { type: slack, url: 'https://hooks.slack.example/T/B/X', timeout: 3s }\n"
                          "    names-only: { type: webhook }\n"
                          "  default: [releases, chat]\n"
                          "  remind_before: 30m\n"
                          "  queue: alerts\n"
                          "  max_attempts: 7\n"
                          "  allow_addresses: [10.0.0.0/8]\n", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    const sl_notify_config *nc = &sl_config_jobs_of(cfg)->notify;
    cr_assert_eq(nc->nchannels, 3);
    const sl_notify_channel *c = sl_config_notify_channel(nc, "releases");
    cr_assert_not_null(c);
    cr_assert_eq(c->type, SL_NOTIFY_WEBHOOK);
    cr_assert_str_eq(c->url, "https://hooks.example.com/s");
    cr_assert_str_eq(c->secret_env, "HOOK_KEY");
    cr_assert_eq(c->timeout_ms, 10000);
    c = sl_config_notify_channel(nc, "chat");
    cr_assert_eq(c->type, SL_NOTIFY_SLACK);
    cr_assert_eq(c->timeout_ms, 3000);
    cr_assert_null(sl_config_notify_channel(nc, "names-only")->url, "a scheduler's channel needs no url");
    cr_assert_null(sl_config_notify_channel(nc, "nope"));
    cr_assert_eq(nc->ndefaults, 2);
    cr_assert_str_eq(nc->defaults[1], "chat");
    cr_assert_eq(nc->remind_before_ms, 1800000);
    cr_assert_str_eq(nc->queue, "alerts");
    cr_assert_eq(nc->max_attempts, 7);
    cr_assert_eq(nc->nallow_addresses, 1);
    cr_assert(sl_sched_config_of(cfg)->notify == nc, "pipelines are validated against these channels");
    const char *names[8];
    size_t n = sl_config_jobs_secret_envs(sl_config_jobs_of(cfg), names, 8);
    cr_assert_eq(n, 1, "the worker takes the channel's secret out of its environment");
    cr_assert_str_eq(names[0], "HOOK_KEY");
    sl_config_free(cfg);

    cfg = load("worker:\n  batch: 4\n", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_str_eq(sl_config_jobs_of(cfg)->notify.queue, "notify");
    cr_assert_eq(sl_config_jobs_of(cfg)->notify.max_attempts, 5);
    cr_assert_eq(sl_config_jobs_of(cfg)->notify.remind_before_ms, 0);
    cr_assert_eq(sl_config_jobs_of(cfg)->notify.nchannels, 0);
    sl_config_free(cfg);

    load_bad("notify:\n  channels:\n    a: { url: 'https://x.example' }\n", 3, 5, "needs 'type: webhook'");
    load_bad("notify:\n  channels:\n    a: { type: email }\n", 3, 16, "must be webhook or slack");
    load_bad("notify:\n  channels:\n    a: { type: webhook, url: 'ftp://x' }\n", 3, 30, "http:// or https://");
    load_bad("notify:\n  channels:\n    a: { type: slack, url: 'https://x.example', secret_env: K }\n", 3, 5,
             "takes no secret");
    load_bad("notify:\n  channels:\n    a: { type: webhook, secret_env: K, secret_file: /k }\n", 3, 5,
             "not both");
    load_bad("notify:\n  channels:\n    a: { type: webhook, token: x }\n", 3, 25, "unknown key 'token'");
    load_bad("notify:\n  channels:\n    a: { type: webhook }\n  default: [b]\n", 4, 12, "no channel 'b'");
    load_bad("notify:\n  queue: 'a b'\n", 2, 10, "must be a queue name");
    load_bad("notify:\n  remind: 1h\n", 2, 3, "unknown key 'remind'");
}
