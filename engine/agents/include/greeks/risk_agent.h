/*
 * greeks/risk_agent.h - the risk agent: live risk of every book, kept current
 * from the book service's committed events on its own thread (greeks/agent.h),
 * with limit crossings journaled and published.
 *
 * Wiring: the book service's listener is gk_risk_agent_committed, which copies
 * the events into the agent's bounded mailbox and returns at once (it never
 * slows a command). The agent's thread takes everything queued, groups it by
 * book, folds the events into its own copy of each book (a projection apart
 * from the write side) and then folds them into the book's risk projection
 * (greeks/risk_projection.h) once per batch: a burst of ticks on one
 * underlying costs one recomputation. Crossings are journaled through the
 * service (gk_record_limit_edges: RiskLimitBreached / RiskLimitRestored) and,
 * once durable, handed to the subscriber in sequence order.
 *
 * A gap (the mailbox was full, or another process appended) is healed by
 * reloading the book from the service and rebuilding its projection; nothing
 * waits on the agent. Valuation time is the events' time.
 *
 * Thread safety: gk_risk_agent_committed and gk_risk_agent_book_risk may be
 * called from any thread; the subscriber runs on the agent's thread.
 */
#ifndef GREEKS_RISK_AGENT_H
#define GREEKS_RISK_AGENT_H

#include "greeks/agent.h"
#include "greeks/book_service.h"
#include "greeks/risk_projection.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_risk_agent gk_risk_agent;

/* Told of every crossing the agent journaled (the committed event). */
typedef void (*gk_risk_edge_subscriber)(void *user, const char *book_id, const gk_event *event);
/* Told each time a book's live risk was updated: it now reflects every event up
 * to `version` (the totals as gk_risk_agent_book_risk returns them). */
typedef void (*gk_risk_update_subscriber)(void *user, const char *book_id, int64_t version,
                                          const gk_underlying_risk *total);

typedef struct gk_risk_agent_options {
  gk_book_service *service;               /* borrowed: reloads, and journals crossings; may
                                             be NULL at start (gk_risk_agent_bind) */
  gk_risk_projection_options projection;  /* grid, hysteresis, American method, pool */
  size_t mailbox_capacity;                /* batches of committed events; 0: 4096 */
  int64_t coalesce_ns;                    /* extra wait to gather a burst; 0: none */
  gk_risk_edge_subscriber on_edge;        /* may be NULL */
  gk_risk_update_subscriber on_risk;      /* may be NULL; runs on the agent's thread */
  void *user;
} gk_risk_agent_options;

gk_code gk_risk_agent_start(const gk_risk_agent_options *options, gk_risk_agent **agent,
                            gk_status *status);
/* The service, when it is created after the agent (its listener is the agent):
 *   agent = start(service NULL); service = new(listener = agent); bind(agent, service)
 * before the service's first command. */
void gk_risk_agent_bind(gk_risk_agent *agent, gk_book_service *service);

/* Drains the mailbox (at most drain_timeout_ns), stops, frees. NULL is a no-op.
 * Stop it before freeing the service it journals through. */
void gk_risk_agent_stop(gk_risk_agent *agent, int64_t drain_timeout_ns);

/* A gk_book_listener.committed: options.listener = {gk_risk_agent_committed, agent}. */
void gk_risk_agent_committed(void *agent, const char *book_id, const gk_book *book,
                             const gk_event *events, size_t count);

/* The book's live risk as of the last batch: the totals, and the book version
 * they reflect. GK_NOT_FOUND when the agent has not seen the book. */
gk_code gk_risk_agent_book_risk(gk_risk_agent *agent, const char *book_id,
                                gk_underlying_risk *total, int64_t *version, gk_status *status);

/* Starts watching a book that exists in the service but has had no commit since
 * the agent started (a restart: greeksd calls it for every book after
 * gk_book_service_load_all): the agent loads it and computes its risk. */
void gk_risk_agent_track(gk_risk_agent *agent, const char *book_id);

/* A book's whole live risk, copied at one version: the totals, each underlying
 * (in the order they first appeared) with its scenario P&L, the grid, and each
 * of the book's limits with its value now and whether each level is breached
 * (hysteresis included). The copy is the caller's: gk_book_risk_view_free. */
typedef struct gk_limit_state {
  gk_risk_limit limit;
  double value;
  bool soft_breached, hard_breached;
} gk_limit_state;

typedef struct gk_book_risk_view {
  char book_id[GK_BOOK_ID_SIZE];
  int64_t version;                  /* the book version the figures reflect */
  gk_underlying_risk total;         /* pnl: spot_count x vol_count, or NULL */
  size_t underlying_count;
  gk_underlying_risk *underlyings;
  size_t spot_count, vol_count;
  double spot_shocks[GK_MAX_SCENARIO_AXIS], vol_shocks[GK_MAX_SCENARIO_AXIS];
  size_t limit_count;
  gk_limit_state limits[GK_MAX_LIMITS];
  double *pnl;                      /* storage behind every pnl pointer above */
} gk_book_risk_view;

/* Copies the book's live risk (it waits at most for the batch the agent is
 * folding for that book). GK_NOT_FOUND when the agent has not seen the book;
 * GK_RESOURCE_EXHAUSTED on OOM. */
gk_code gk_risk_agent_book_risk_view(gk_risk_agent *agent, const char *book_id,
                                     gk_book_risk_view **out, gk_status *status);
void gk_book_risk_view_free(gk_book_risk_view *view); /* NULL is a no-op */

typedef struct gk_risk_agent_counters {
  uint64_t batches, events, recomputations, rebuilds, crossings, dropped;
  /* crossings judged before the journal's last limit edge (another
   * instance's, or this one's own under a backlog of more than a batch):
   * refused by gk_record_limit_edges_judged_at, reloaded and judged again */
  uint64_t stale_edges;
  /* crossings the projection's figures made but the brake held: the journal
   * had flipped the level twice with nothing moved since, so another
   * instance values the book differently (adr/0054) */
  uint64_t held_edges;
} gk_risk_agent_counters;
gk_risk_agent_counters gk_risk_agent_counters_of(gk_risk_agent *agent);

/* The agent's actor's lifecycle state (greeks/agent.h); GK_AGENT_STOPPED for
 * NULL. Stopped, it no longer folds commits: live risk and limit breaches go
 * stale, so readiness must see it. */
gk_agent_state gk_risk_agent_state(gk_risk_agent *agent);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_RISK_AGENT_H */
