/*
 * greeksd's HTTP listener on libmicrohttpd (adr/0031): why that library, and
 * why a listener apart from the gRPC port, are in the ADR. How: the address is
 * resolved with getaddrinfo and handed to MHD as a socket address (so port 0
 * and IPv6 work alike); the bound port is read back from the listening socket.
 * Each request is answered on the first call of the access handler: GET and
 * HEAD carry no body to wait for.
 */
#include "http_listener.h"

#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct greeksd_http {
  struct MHD_Daemon *daemon;
  greeksd_http_route route;
  void *user;
};

static enum MHD_Result queue(struct MHD_Connection *connection, int status, const char *content_type, char *body,
                             size_t length) {
  struct MHD_Response *response =
      body ? MHD_create_response_from_buffer(length, body, MHD_RESPMEM_MUST_FREE)
           : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (response == NULL) {
    free(body);
    return MHD_NO; /* out of memory: MHD closes the connection */
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) /* RFC 9110: a 405 says what is allowed */
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result queued = MHD_queue_response(connection, (unsigned)status, response);
  MHD_destroy_response(response);
  return queued;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **request_state) {
  (void)version, (void)upload_data, (void)request_state;
  greeksd_http *http = cls;
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
    *upload_data_size = 0; /* a body, if any, is ignored */
    static const char refused[] = "only GET and HEAD are served\n";
    char *body = malloc(sizeof refused);
    if (body) memcpy(body, refused, sizeof refused);
    return queue(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", body,
                 body ? sizeof refused - 1 : 0);
  }
  greeksd_http_reply reply = {200, "text/plain; charset=utf-8", NULL, 0};
  http->route(http->user, url, &reply);
  return queue(connection, reply.status, reply.content_type, reply.body, reply.length);
}

/* HOST:PORT or [V6]:PORT into a socket address. */
static int resolve(const char *listen, struct sockaddr_storage *address, char *error, size_t size) {
  const char *colon = strrchr(listen, ':');
  if (colon == NULL || colon == listen) {
    snprintf(error, size, "'%s' must be HOST:PORT", listen);
    return -1;
  }
  char host[256];
  size_t n = (size_t)(colon - listen);
  if (listen[0] == '[' && n >= 2 && listen[n - 1] == ']') listen++, n -= 2;
  if (n >= sizeof host) n = sizeof host - 1;
  memcpy(host, listen, n);
  host[n] = '\0';
  struct addrinfo hints, *found = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE; /* '*' or an empty host: every interface, as --listen reads it (it bound loopback) */
  int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &found);
  if (rc != 0 || found == NULL) {
    snprintf(error, size, "cannot resolve '%s': %s", host, gai_strerror(rc));
    return -1;
  }
  memcpy(address, found->ai_addr, found->ai_addrlen); /* MHD takes the length from the family */
  freeaddrinfo(found);
  return 0;
}

static int bound_port(struct MHD_Daemon *daemon) {
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_LISTEN_FD);
  struct sockaddr_storage address;
  socklen_t length = sizeof address;
  if (info == NULL || getsockname(info->listen_fd, (struct sockaddr *)&address, &length) != 0) return 0;
  if (address.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
  return ntohs(((struct sockaddr_in *)&address)->sin_port);
}

greeksd_http *greeksd_http_start(const char *listen, greeksd_http_route route, void *user, int *port, char *error,
                                 size_t size) {
  struct sockaddr_storage address;
  if (resolve(listen, &address, error, size) != 0) return NULL;
  greeksd_http *http = calloc(1, sizeof *http);
  if (http == NULL) {
    snprintf(error, size, "out of memory");
    return NULL;
  }
  http->route = route;
  http->user = user;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
  if (address.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  /* The connection timeout is an idle one: a client sending a header line a
   * second holds its connection for good, and 32 such connections once took
   * every slot, so /healthz timed out and the liveness probe restarted the
   * pod. Slots are therefore shared out per address: one address holds at
   * most 16 of 256, and a probe from any other still gets in. */
  http->daemon = MHD_start_daemon(flags, 0, NULL, NULL, answer, http, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&address,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                  (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
  if (http->daemon == NULL) {
    snprintf(error, size, "cannot listen on '%s' (address in use, or not an address of this host)",
             listen);
    free(http);
    return NULL;
  }
  *port = bound_port(http->daemon);
  return http;
}

void greeksd_http_stop(greeksd_http *http) {
  if (http == NULL) return;
  MHD_stop_daemon(http->daemon);
  free(http);
}
