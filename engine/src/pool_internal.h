/*
 * Internal to the engine (and its tests): the cgroup v2 CPU quota lookup of
 * gk_usable_cores (pool.c), with the two paths it reads as arguments so that a
 * test can hand it a tree of its own (this machine may be cgroup v1, or give
 * the process no quota).
 */
#ifndef GREEKS_POOL_INTERNAL_H
#define GREEKS_POOL_INTERNAL_H

/* The tightest cgroup v2 quota, in whole CPUs rounded up, on the cgroup named
 * by the "0::/PATH" line of `proc_cgroup` (a /proc/self/cgroup) and every
 * ancestor up to `cgroup_root` (a /sys/fs/cgroup): each one's "cpu.max"
 * ("QUOTA PERIOD" or "max PERIOD"). 0: no quota, or nothing readable. */
int gk_cgroup_cpu_quota_at(const char *proc_cgroup, const char *cgroup_root);

#endif
