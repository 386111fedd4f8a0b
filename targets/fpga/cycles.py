"""Clock cycles of one timestep of the generated design (docs/targets/fpga.md, "Cycle budget").

A core with N neurons on P lanes walks G = ceil(N / P) groups. Group g takes max(E_in + 1, E_rec + 1, P)
cycles: a first cycle that restarts the P accumulators (a synchronous reset, cheaper than a
load-or-add multiplexer per lane), then one input event and one recurrent event per cycle reaching
all P neurons of the group at once, and at least P cycles so that the previous group's P sums have left the hold register for the
update pipeline (one neuron per cycle) before the next group's sums arrive. After the last group the
core flushes the walk pipeline, updates the last group's N_last neurons and drains the update
pipeline. The simulation reports the cycles per step; tests compare them with this formula.
"""
from __future__ import annotations

WALK_STAGES = 4          # event read, weight read, read data registered, lane product -> accumulator (lif_core.v.j2)
FLUSH = 1                # the token that hands the last group's sums to the update
UPDATE_STAGES = 10       # state read .. write-back (U1..U10)
START_DONE = 2           # the start pulse into the core and its done pulse out
LAYER_OVERHEAD = WALK_STAGES + FLUSH + UPDATE_STAGES + START_DONE
STEP_OVERHEAD = 2        # controller: the step pulse and the advance of every spike list
FORMULA = (f"sum over layers of [ G * max(E_in + 1, E_rec + 1, P) + N_last + {LAYER_OVERHEAD} ] + {STEP_OVERHEAD} "
           "(P lanes, G = ceil(N / P) neuron groups, N_last = N - (G - 1) * P neurons in the last group; "
           "E_in events in the input list read this step, E_rec own spikes read by the recurrent synapse, "
           "0 without one); input streaming adds one cycle per input event")


def layer_cycles(size: int, lanes: int, in_events: int, rec_events: int) -> int:
    """Cycles one core with ``size`` neurons on ``lanes`` lanes needs for one timestep."""
    groups = -(-size // lanes)
    last = size - (groups - 1) * lanes
    return groups * max(in_events + 1, rec_events + 1, lanes) + last + LAYER_OVERHEAD


def step_cycles(plan, in_events: list, rec_events: list) -> int:
    """Cycles from the step pulse to ready, given each core's input and recurrent event counts."""
    return sum(layer_cycles(c.size, c.lanes, e, r) for c, e, r in zip(plan.cores, in_events, rec_events)) \
        + STEP_OVERHEAD
