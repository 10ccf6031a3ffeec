/*
 * The plaintext listener (listener.h). One thread polls the listening socket
 * and accepts while fewer than max_connections accepted sockets are open.
 *
 * Which connections are still open: the core closes an accepted descriptor
 * when its connection ends, and the number may be reused at once by anything
 * in the process. Each accepted socket is remembered as (descriptor, inode);
 * an entry whose descriptor no longer names that inode is gone. Sockets have
 * unique inodes while open, so reuse cannot fool the count.
 */
#include "listener.h"

#include <errno.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "greeks/clock.h"
#include "greeks/pool.h"
#include "greeks/log.h"

enum { LISTENER_POLL_MS = 100, LISTEN_BACKLOG = 1024, EMFILE_LOG_EVERY_S = 10 };

typedef struct accepted {
  int fd;
  ino_t inode;
} accepted;

struct greeksd_listener {
  int fd;
  int max_connections;
  grpc_server *server;
  grpc_server_credentials *credentials;
  pthread_t thread;
  int thread_started;
  atomic_int stop;
  accepted *open;
  int open_count;
  int64_t last_emfile_log_ns;
  int at_cap_logged;
};

/* ---- addresses ---- */

/* Splits HOST:PORT or [HOST]:PORT. */
static int split_address(const char *address, char *host, size_t host_size, char *port, size_t port_size) {
  const char *colon = strrchr(address, ':');
  if (colon == NULL) return -1;
  const char *h = address;
  size_t n = (size_t)(colon - address);
  if (n >= 2 && h[0] == '[' && h[n - 1] == ']') h++, n -= 2;
  if (n >= host_size || strlen(colon + 1) >= port_size) return -1;
  memcpy(host, h, n);
  host[n] = '\0';
  snprintf(port, port_size, "%s", colon + 1);
  return 0;
}

static struct addrinfo *resolve(const char *address, int passive) {
  char host[256], port[16];
  if (split_address(address, host, sizeof host, port, sizeof port) != 0) return NULL;
  struct addrinfo hints, *found = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  if (getaddrinfo(host[0] ? host : NULL, port, &hints, &found) != 0) return NULL;
  return found;
}

static int is_loopback(const struct sockaddr *a) {
  if (a->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
  if (a->sa_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
  return 0;
}

/* Resolved as the bind resolves it (passive): '*' is every interface there,
 * and a non-passive lookup read it as loopback, so '*:PORT' bound 0.0.0.0
 * with no plaintext warning (found in review). */
int greeksd_address_is_loopback(const char *address) {
  struct addrinfo *found = resolve(address, 1);
  if (found == NULL) return 0;
  int all = 1;
  for (struct addrinfo *a = found; a; a = a->ai_next) all &= is_loopback(a->ai_addr);
  freeaddrinfo(found);
  return all;
}

/* ---- binding ---- */

static int bind_one(const struct addrinfo *a, char *why, size_t size) {
  int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
  if (fd < 0) {
    snprintf(why, size, "cannot create a socket: %s", strerror(errno));
    return -1;
  }
  int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* restarts past TIME_WAIT; not a second owner */
  if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    int e = errno;
    if (e == EADDRINUSE)
      snprintf(why, size, "the address is in use by another process (another greeksd?); each server needs its own");
    else snprintf(why, size, "cannot listen there: %s", strerror(e));
    close(fd);
    return -1;
  }
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_storage a;
  socklen_t n = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &n) != 0) return 0;
  if (a.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&a)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
}

greeksd_listener *greeksd_listener_bind(const char *address, int max_connections, int *port, char *error,
                                        size_t size) {
  struct addrinfo *found = resolve(address, 1);
  if (found == NULL) {
    snprintf(error, size, "'%s' is not an address of this host (HOST:PORT)", address);
    return NULL;
  }
  char why[200] = "no address";
  int fd = bind_one(found, why, sizeof why); /* the first address: one socket, as the core's listener would */
  freeaddrinfo(found);
  if (fd < 0) {
    snprintf(error, size, "cannot listen on '%s': %s", address, why);
    return NULL;
  }
  greeksd_listener *l = calloc(1, sizeof *l);
  accepted *open = calloc((size_t)max_connections, sizeof *open);
  if (l == NULL || open == NULL) {
    free(l), free(open), close(fd);
    snprintf(error, size, "out of memory");
    return NULL;
  }
  l->fd = fd;
  l->max_connections = max_connections;
  l->open = open;
  *port = bound_port(fd);
  return l;
}

/* ---- accepting ---- */

static int still_open(const accepted *a) {
  struct stat st;
  return fstat(a->fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == a->inode;
}

static void forget_closed(greeksd_listener *l) {
  int kept = 0;
  for (int i = 0; i < l->open_count; i++)
    if (still_open(&l->open[i])) l->open[kept++] = l->open[i];
  l->open_count = kept;
}

static void log_no_descriptors(greeksd_listener *l, int e) {
  int64_t now = gk_monotonic_ns();
  if (l->last_emfile_log_ns != 0 && now - l->last_emfile_log_ns < EMFILE_LOG_EVERY_S * GK_NS_PER_S) return;
  l->last_emfile_log_ns = now;
  gk_logf(GK_LOG_WARN, "greeksd",
          "accept: %s with %d connections open: new connections wait in the backlog until some close "
          "(raise the fd limit or lower --max-connections; see docs/operations.md)",
          strerror(e), l->open_count);
}

/* Accepts until the backlog is empty, the cap is reached or descriptors run out. */
static void accept_ready(greeksd_listener *l) {
  while (l->open_count < l->max_connections && !atomic_load(&l->stop)) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) log_no_descriptors(l, errno);
      return; /* EAGAIN, or retried at the next poll */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct stat st;
    if (fstat(fd, &st) != 0) { /* cannot be tracked, so not served */
      close(fd);
      continue;
    }
    l->open[l->open_count++] = (accepted){fd, st.st_ino};
    grpc_server_add_channel_from_fd(l->server, fd, l->credentials); /* the core owns fd now */
  }
}

static void note_cap(greeksd_listener *l) {
  int at_cap = l->open_count >= l->max_connections;
  if (at_cap && !l->at_cap_logged)
    gk_logf(GK_LOG_WARN, "greeksd", "%d connections open (--max-connections): new ones wait until some close",
            l->open_count);
  l->at_cap_logged = at_cap;
}

static void *accept_loop(void *arg) {
  greeksd_listener *l = arg;
  (void)gk_thread_set_name("gk-accept");
  while (!atomic_load(&l->stop)) {
    forget_closed(l);
    note_cap(l);
    struct pollfd p = {l->fd, POLLIN, 0};
    int ready = l->open_count < l->max_connections ? poll(&p, 1, LISTENER_POLL_MS) : 0;
    if (ready == 0 && l->open_count >= l->max_connections) usleep(LISTENER_POLL_MS * 1000);
    if (ready > 0 && !atomic_load(&l->stop)) accept_ready(l);
    if (l->last_emfile_log_ns != 0 && gk_monotonic_ns() - l->last_emfile_log_ns < GK_NS_PER_S)
      usleep(LISTENER_POLL_MS * 1000); /* out of descriptors: let some close */
  }
  return NULL;
}

void greeksd_listener_start(greeksd_listener *l, grpc_server *server) {
  l->server = server;
  l->credentials = grpc_insecure_server_credentials_create();
  if (pthread_create(&l->thread, NULL, accept_loop, l) == 0) l->thread_started = 1;
  else gk_logf(GK_LOG_ERROR, "greeksd", "cannot start the listener thread: no connection will be accepted");
}

void greeksd_listener_stop(greeksd_listener *l) {
  if (l == NULL) return;
  atomic_store(&l->stop, 1);
  if (l->thread_started) pthread_join(l->thread, NULL);
  l->thread_started = 0;
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}

void greeksd_listener_free(greeksd_listener *l) {
  if (l == NULL) return;
  greeksd_listener_stop(l);
  if (l->credentials) grpc_server_credentials_release(l->credentials);
  free(l->open);
  free(l);
}
