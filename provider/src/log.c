/*
 * Optional debug log: AKV_LOG_FILE names a file (opened on first use, append mode),
 * AKV_LOG_LEVEL is error, warn, info (default when a file is set) or debug. One line per event,
 * with time, pid and thread. Callers never pass key material, digests or plaintexts.
 */
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

/* Reads the environment only; the file is opened at the first line written. */
void akv_log_init(void)
{
    pthread_mutex_lock(&log_lock);
    const char *path = getenv("AKV_LOG_FILE");
    const char *level = getenv("AKV_LOG_LEVEL");
    if (path != NULL && *path != '\0' && log_path == NULL) {
        log_path = strdup(path);
        log_level = AKV_LOG_INFO;
        if (level != NULL) {
            if (strcasecmp(level, "error") == 0)
                log_level = AKV_LOG_ERROR;
            else if (strcasecmp(level, "warn") == 0 || strcasecmp(level, "warning") == 0)
                log_level = AKV_LOG_WARN;
            else if (strcasecmp(level, "debug") == 0 || strcasecmp(level, "trace") == 0)
                log_level = AKV_LOG_DEBUG;
            else if (strcasecmp(level, "off") == 0 || strcasecmp(level, "none") == 0)
                log_level = 0;
        }
    }
    pthread_mutex_unlock(&log_lock);
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
