/* l_net.h: the run's one Net (runner/net.c), shared by the node handles that attach links. */
#pragma once

#include "net.h"

/* The run's Net, opened on first use in the run's network namespace and freed at the end of the
 * run (every bridge, veth host end and tap it made goes with it). NULL with *ret_error set. */
Net *lnet_get(const char **ret_error);
