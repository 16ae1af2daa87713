/*
 * Optional debug log: AKV_LOG_FILE names a file (opened on first use, append mode, 0600) and
 * AKV_LOG_LEVEL the level: error, warn, info (the default when a file is set), debug, off, or the
 * original provider's numbers 0 error, 1 info, 2 debug, 3 trace (= debug here). Names of the
 * original (microsoft/AzureKeyVaultManagedHSMEngine) are honoured when akv's are unset:
 * AKV_PROVIDER_LOG for the file, RUST_LOG (its `akv_provider=LEVEL` directive, else a bare level)
 * for the level. One line per event, with time, pid and thread. Callers never pass key material,
 * digests or plaintexts. Read with secure_getenv: a setuid program loading the provider does not
 * write a file of its caller's choosing.
 */
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "akv.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_level; /* 0 = off */
static char *log_path;
static int log_fd = -1;

/* A level word or number as akv_log_level (0 = off); -1 when TEXT is neither. */
static int parse_level(const char *text)
{
    static const struct {
        const char *name;
        int level;
    } words[] = {{"error", AKV_LOG_ERROR},
                 {"warn", AKV_LOG_WARN},
                 {"warning", AKV_LOG_WARN},
                 {"info", AKV_LOG_INFO},
                 {"debug", AKV_LOG_DEBUG},
                 {"trace", AKV_LOG_DEBUG},
                 {"off", 0},
                 {"none", 0}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(text, words[i].name) == 0)
            return words[i].level;
    /* The original's numbers: 0 error, 1 info, 2 debug, 3 trace (and more than 3: everything). */
    if (*text >= '0' && *text <= '9' && strspn(text, "0123456789") == strlen(text) && strlen(text) <= 3) {
        static const int numbered[] = {AKV_LOG_ERROR, AKV_LOG_INFO, AKV_LOG_DEBUG, AKV_LOG_DEBUG};
        int n = atoi(text);
        return numbered[n > 3 ? 3 : n];
    }
    return -1;
}

/* RUST_LOG, env_logger's syntax: comma-separated `target=level` or a bare `level`. */
static int rust_log_level(const char *spec)
{
    int bare = -1;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item))
            item++;
        char *slash = strchr(item, '/'); /* a regex filter after '/' does not change the level */
        if (slash != NULL)
            *slash = '\0';
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            if (parse_level(item) >= 0 && !isdigit((unsigned char)*item))
                bare = parse_level(item);
            continue;
        }
        *eq = '\0';
        if (strcmp(item, "akv_provider") == 0 && parse_level(eq + 1) >= 0)
            return parse_level(eq + 1);
    }
    return bare;
}

static const char *env(const char *name)
{
    const char *v = secure_getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

/* Reads the environment only; the file is opened at the first line written. */
void akv_log_init(void)
{
    pthread_mutex_lock(&log_lock);
    const char *path = env("AKV_LOG_FILE");
    if (path == NULL)
        path = env("AKV_PROVIDER_LOG");
    const char *level = env("AKV_LOG_LEVEL");
    const char *rust = env("RUST_LOG");
    int unknown = 0;
    if (path != NULL && log_path == NULL) {
        log_path = strdup(path);
        log_level = AKV_LOG_INFO;
        int parsed = level != NULL ? parse_level(level) : rust != NULL ? rust_log_level(rust) : AKV_LOG_INFO;
        if (parsed >= 0)
            log_level = parsed;
        else
            unknown = level != NULL;
    }
    pthread_mutex_unlock(&log_lock);
    if (unknown)
        akv_log(AKV_LOG_WARN,
                "AKV_LOG_LEVEL=%.40s is not a log level (error, warn, info, debug, off, or 0-3 as the original "
                "provider numbers them); logging at info",
                level);
}

static int akv_log_enabled(int level)
{
    return log_level != 0 && level <= log_level;
}

void akv_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"", "error", "warn", "info", "debug"};
    if (!akv_log_enabled(level))
        return;
    char line[1400];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ akv_provider pid=%ld %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), (long)getpid(), names[level]);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = strlen(line);
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    pthread_mutex_lock(&log_lock);
    if (log_fd < 0 && log_path != NULL)
        log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (log_fd >= 0) {
        ssize_t w = write(log_fd, line, len);
        (void)w;
    }
    pthread_mutex_unlock(&log_lock);
}
