/*
 * akv_peercred.node: the agent's one native helper (docs/security.md, "Peer credentials"). Node
 * cannot ask the kernel who is on the other end of a Unix socket, and the access policy must not
 * rest on what a client says about itself. The rules this file keeps:
 *  - it only reads: getsockopt(SO_PEERCRED / SO_PEERGROUPS) on a descriptor the agent already
 *    owns, and the system's user/group database (getpwnam_r and friends, so NSS users count);
 *  - it never throws for a lookup that finds nothing (undefined), and throws a plain Error naming
 *    the system call and errno for a descriptor that is not a connected Unix socket;
 *  - it exports one symbol (the Node-API module registration), everything else is static.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <node_api.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PEER_GROUPS 256

static napi_value throw_errno(napi_env env, const char *what, int err)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
    napi_throw_error(env, NULL, msg);
    return NULL;
}

static int arg_int(napi_env env, napi_callback_info info, int32_t *out)
{
    size_t argc = 1;
    napi_value argv[1];
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
        napi_get_value_int32(env, argv[0], out) != napi_ok) {
        napi_throw_type_error(env, NULL, "expected one integer argument");
        return 0;
    }
    return 1;
}

static int arg_string(napi_env env, napi_callback_info info, char *buf, size_t size)
{
    size_t argc = 1, len = 0;
    napi_value argv[1];
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
        napi_get_value_string_utf8(env, argv[0], buf, size, &len) != napi_ok || len == 0 || len >= size - 1) {
        napi_throw_type_error(env, NULL, "expected one non-empty string argument (a user or group name)");
        return 0;
    }
    return 1;
}

static void set_u32(napi_env env, napi_value obj, const char *name, uint32_t v)
{
    napi_value n;
    napi_create_uint32(env, v, &n);
    napi_set_named_property(env, obj, name, n);
}

/* peerCredentials(fd) -> { uid, gid, pid, groups: number[] } as the kernel recorded them at connect(). */
static napi_value peer_credentials(napi_env env, napi_callback_info info)
{
    int32_t fd;
    if (!arg_int(env, info, &fd))
        return NULL;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
    napi_value obj, groups;
    napi_create_object(env, &obj);
    set_u32(env, obj, "uid", cred.uid);
    set_u32(env, obj, "gid", cred.gid);
    set_u32(env, obj, "pid", (uint32_t)cred.pid);
    /* Supplementary groups (Linux >= 4.13); an older kernel gives none, and rules see only gid. */
    gid_t list[MAX_PEER_GROUPS];
    socklen_t glen = sizeof(list);
    napi_create_array(env, &groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, list, &glen) == 0) {
        for (uint32_t i = 0; i < glen / sizeof(gid_t); i++) {
            napi_value g;
            napi_create_uint32(env, list[i], &g);
            napi_set_element(env, groups, i, g);
        }
    } else if (errno == ERANGE) {
        napi_value truncated;
        napi_get_boolean(env, true, &truncated);
        napi_set_named_property(env, obj, "groupsTruncated", truncated);
    }
    napi_set_named_property(env, obj, "groups", groups);
    return obj;
}

static napi_value string_or_undefined(napi_env env, const char *s)
{
    napi_value v;
    if (s == NULL)
        napi_get_undefined(env, &v);
    else
        napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
    return v;
}

static napi_value number_or_undefined(napi_env env, int found, uint32_t n)
{
    napi_value v;
    if (!found)
        napi_get_undefined(env, &v);
    else
        napi_create_uint32(env, n, &v);
    return v;
}

/* userId(name) -> uid | undefined */
static napi_value user_id(napi_env env, napi_callback_info info)
{
    char name[256], buf[16384];
    if (!arg_string(env, info, name, sizeof(name)))
        return NULL;
    struct passwd pw, *found = NULL;
    int rc = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
    return number_or_undefined(env, rc == 0 && found != NULL, found ? found->pw_uid : 0);
}

/* groupId(name) -> gid | undefined */
static napi_value group_id(napi_env env, napi_callback_info info)
{
    char name[256], buf[65536];
    if (!arg_string(env, info, name, sizeof(name)))
        return NULL;
    struct group gr, *found = NULL;
    int rc = getgrnam_r(name, &gr, buf, sizeof(buf), &found);
    return number_or_undefined(env, rc == 0 && found != NULL, found ? found->gr_gid : 0);
}

/* userName(uid) -> name | undefined */
static napi_value user_name(napi_env env, napi_callback_info info)
{
    int32_t uid;
    char buf[16384];
    if (!arg_int(env, info, &uid))
        return NULL;
    struct passwd pw, *found = NULL;
    int rc = getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &found);
    return string_or_undefined(env, rc == 0 && found != NULL ? found->pw_name : NULL);
}

/* groupName(gid) -> name | undefined */
static napi_value group_name(napi_env env, napi_callback_info info)
{
    int32_t gid;
    char buf[65536];
    if (!arg_int(env, info, &gid))
        return NULL;
    struct group gr, *found = NULL;
    int rc = getgrgid_r((gid_t)gid, &gr, buf, sizeof(buf), &found);
    return string_or_undefined(env, rc == 0 && found != NULL ? found->gr_name : NULL);
}

static napi_value init(napi_env env, napi_value exports)
{
    napi_property_descriptor props[] = {
        {"peerCredentials", NULL, peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
        {"userId", NULL, user_id, NULL, NULL, NULL, napi_enumerable, NULL},
        {"groupId", NULL, group_id, NULL, NULL, NULL, napi_enumerable, NULL},
        {"userName", NULL, user_name, NULL, NULL, NULL, napi_enumerable, NULL},
        {"groupName", NULL, group_name, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
