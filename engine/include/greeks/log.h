/*
 * greeks/log.h - where library events go. Library code never prints: it hands
 * events to the sink the application installed (the CLI and greeksd install one
 * that writes to stderr). With no sink installed, events are dropped. The sink is
 * process configuration, set once at start-up, like the ISA choice.
 */
#ifndef GREEKS_LOG_H
#define GREEKS_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gk_log_level { GK_LOG_DEBUG = 0, GK_LOG_INFO, GK_LOG_WARN, GK_LOG_ERROR } gk_log_level;

/* Receives one event: its level, the component ("pricing-agent", ...) and a
 * complete sentence. May be called from any thread, concurrently. */
typedef void (*gk_log_sink)(void *user, gk_log_level level, const char *component, const char *message);

/* Installs the sink (NULL: drop events). Thread-safe. */
void gk_log_set_sink(gk_log_sink sink, void *user);

/* Formats and hands an event to the sink (no-op without one). */
void gk_logf(gk_log_level level, const char *component, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

const char *gk_log_level_name(gk_log_level level);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_LOG_H */
