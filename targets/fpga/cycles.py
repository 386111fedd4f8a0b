"""Clock cycles of one timestep of the generated design (docs/targets/fpga.md, "Cycle budget").

A core on P lanes walks G neuron groups: G = ceil(N / P) for a Dense synapse, G = ceil(Cout / P) *
Ho * Wo for a conv core (lanes are output channels at one output position). Group g takes
max(E_in + 1, E_rec + 1, P) cycles: a first cycle that restarts the P accumulators (a synchronous
reset, cheaper than a load-or-add multiplexer per lane), then one input event and one recurrent
event per cycle reaching all P neurons of the group at once (a conv core walks every input event for
every group; events outside the group's window add 0), and at least P cycles so that the previous
group's P sums have left the hold register for the update pipeline (one neuron per cycle) before the
next group's sums arrive. After the last group the core flushes the walk pipeline, updates the last
group's N_last neurons and drains the update pipeline. The simulation reports the cycles per step;
tests compare them with this formula.
"""
from __future__ import annotations

WALK_STAGES = 4          # event read, weight read, read data registered, lane product -> accumulator (lif_core.v.j2)
CONV_WALK_STAGES = WALK_STAGES + 1  # a conv core first reads the event's (c, y, x) from its coordinate ROM
FLUSH = 1                # the token that hands the last group's sums to the update
UPDATE_STAGES = 10       # state read .. write-back (U1..U10)
START_DONE = 2           # the start pulse into the core and its done pulse out
LAYER_OVERHEAD = WALK_STAGES + FLUSH + UPDATE_STAGES + START_DONE
STEP_OVERHEAD = 2        # controller: the step pulse and the advance of every spike list
FORMULA = (f"sum over layers of [ G * max(E_in + 1, E_rec + 1, P) + N_last + {LAYER_OVERHEAD} (+1 for a conv "
           f"core) ] + {STEP_OVERHEAD} (P lanes; G = ceil(N / P) neuron groups, or ceil(Cout / P) * Ho * Wo for a "
           "conv core; N_last = neurons in the last group; E_in events in the input list read this step, E_rec "
           "own spikes read by the recurrent synapse, 0 without one); input streaming adds one cycle per input event")


def layer_cycles(core, in_events: int, rec_events: int) -> int:
    """Cycles one core (a CorePlan: groups, lanes, last_lanes, walk_stages) needs for one timestep."""
    return core.groups * max(in_events + 1, rec_events + 1, core.lanes) + core.last_lanes + LAYER_OVERHEAD \
        + core.walk_stages - WALK_STAGES


def step_cycles(plan, in_events: list, rec_events: list) -> int:
    """Cycles from the step pulse to ready, given each core's input and recurrent event counts."""
    return sum(layer_cycles(c, e, r) for c, e, r in zip(plan.cores, in_events, rec_events)) + STEP_OVERHEAD
