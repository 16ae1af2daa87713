/* Setting values (setting_values.h): strict numbers, yes/no words, users, the default socket. */
#include "setting_values.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

int akv_parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    if (text == NULL || *text < '0' || *text > '9')
        return 0;
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0' || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

int akv_parse_bool(const char *text)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return 1;
        if (strcasecmp(text, no[i]) == 0)
            return 0;
    }
    return -1;
}

int akv_resolve_user(const char *text, uid_t *uid)
{
    unsigned long n;
    if (akv_parse_uint(text, 0, (uid_t)-2, &n)) {
        *uid = (uid_t)n;
        return 1;
    }
    struct passwd pw, *found = NULL;
    char buf[2048];
    if (getpwnam_r(text, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
        return 0;
    *uid = found->pw_uid;
    return 1;
}

void akv_default_socket_path(char *out, size_t size)
{
    const char *runtime = secure_getenv("XDG_RUNTIME_DIR");
    if (runtime != NULL && *runtime != '\0')
        snprintf(out, size, "%s/akv/agent.sock", runtime);
    else if (getuid() == 0)
        snprintf(out, size, "/run/akv/agent.sock");
    else
        snprintf(out, size, "/tmp/akv-%u/agent.sock", (unsigned)getuid());
}
