"""snntorch tutorial networks as their notebooks and docs write them (snntorch 1.0.0), as test fixtures.

Each entry is the tutorial's own code (module globals, class, forward) so the frontend meets it as a
user's ``--arch`` file would. ``namespace(name)`` executes one in a fresh namespace; ``write(name,
folder)`` saves it as ``folder/name.py`` for ``--arch``. Deviations from the published text are
only those snntorch 1.0.0 forces, each marked ``# 1.0.0:``.
"""
from __future__ import annotations

from pathlib import Path

# snntorch tutorial 5 ("Training Spiking Neural Networks with snntorch"): 784-1000-10, the input is
# fed every step by the forward's own loop; called as ``net(data.view(batch_size, -1))``.
TUTORIAL5 = '''
import torch
import torch.nn as nn
import snntorch as snn

batch_size = 128
num_inputs = 28*28
num_hidden = 1000
num_outputs = 10
num_steps = 25
beta = 0.95

# Define Network
class Net(nn.Module):
    def __init__(self):
        super().__init__()

        # Initialize layers
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):

        # Initialize hidden states at t=0
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()

        # Record the final layer
        spk2_rec = []
        mem2_rec = []

        for step in range(num_steps):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)

        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)
'''

# snntorch tutorial 6 ("Surrogate Gradient Descent in a Convolutional SNN"): 12C5-MP2-64C5-MP2-1024FC10,
# the Sequential that the notebook trains, called once per step after ``utils.reset(net)``.
TUTORIAL6_SEQUENTIAL = '''
import torch
import torch.nn as nn
import snntorch as snn
from snntorch import surrogate

batch_size = 128

# neuron and simulation parameters
spike_grad = surrogate.fast_sigmoid(slope=25)
beta = 0.5
num_steps = 50

def make_net():
    #  Initialize Network
    net = nn.Sequential(nn.Conv2d(1, 12, 5),
                        nn.MaxPool2d(2),
                        snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                        nn.Conv2d(12, 64, 5),
                        nn.MaxPool2d(2),
                        snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                        nn.Flatten(),
                        nn.Linear(64*4*4, 10),
                        snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True)
                        )
    return net
'''

# snntorch tutorial 6: the class version the notebook shows (functional max pooling, states created
# in every call, ``view(batch_size, -1)`` with the global batch size).
TUTORIAL6_CLASS = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
import snntorch as snn
from snntorch import surrogate

batch_size = 128

# neuron and simulation parameters
spike_grad = surrogate.fast_sigmoid(slope=25)
beta = 0.5

# Define Network
class Net(nn.Module):
    def __init__(self):
        super().__init__()

        # Initialize layers
        self.conv1 = nn.Conv2d(1, 12, 5)
        self.lif1 = snn.Leaky(beta=beta, spike_grad=spike_grad)
        self.conv2 = nn.Conv2d(12, 64, 5)
        self.lif2 = snn.Leaky(beta=beta, spike_grad=spike_grad)
        self.fc1 = nn.Linear(64*4*4, 10)
        self.lif3 = snn.Leaky(beta=beta, spike_grad=spike_grad)

    def forward(self, x):

        # Initialize hidden states and outputs at t=0
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        mem3 = self.lif3.init_leaky()

        cur1 = F.max_pool2d(self.conv1(x), 2)
        spk1, mem1 = self.lif1(cur1, mem1)

        cur2 = F.max_pool2d(self.conv2(spk1), 2)
        spk2, mem2 = self.lif2(cur2, mem2)

        cur3 = self.fc1(spk2.view(batch_size, -1))
        spk3, mem3 = self.lif3(cur3, mem3)

        return spk3, mem3
'''

# snntorch docs, "Building Networks: Synaptic Conductance-based LIF Neuron" (example_snn_synaptic).
SYNAPTIC = '''
import torch
import torch.nn as nn
import snntorch as snn

alpha = 0.9
beta = 0.85

batch_size = 128

num_inputs = 784
num_hidden = 1000
num_outputs = 10

num_steps = 100


# Define Network
class Net(nn.Module):
    def __init__(self):
        super().__init__()

        # initialize layers
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Synaptic(alpha=alpha, beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Synaptic(alpha=alpha, beta=beta)

    def forward(self, x):
        syn1, mem1 = self.lif1.init_synaptic()  # 1.0.0: init_synaptic() takes no sizes and returns (syn, mem)
        syn2, mem2 = self.lif2.init_synaptic()  # 1.0.0: as above

        spk2_rec = []  # Record the output trace of spikes
        mem2_rec = []  # Record the output trace of membrane potential

        for step in range(num_steps):
            cur1 = self.fc1(x)
            spk1, syn1, mem1 = self.lif1(cur1, syn1, mem1)
            cur2 = self.fc2(spk1)
            spk2, syn2, mem2 = self.lif2(cur2, syn2, mem2)

            spk2_rec.append(spk2)
            mem2_rec.append(mem2)

        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)
'''

# snntorch RLeaky docstring example: all-to-all recurrence (nn.Linear) and one-to-one (V).
RLEAKY = '''
import torch
import torch.nn as nn
import snntorch as snn

num_inputs, num_hidden, num_outputs, num_steps = 784, 1000, 10, 25  # 1.0.0: the docstring leaves these undefined

beta = 0.5 # decay rate
V1 = 0.5 # shared recurrent connection
V2 = torch.rand(num_outputs) # unshared recurrent connections

# Define Network
class Net(nn.Module):
    def __init__(self):
        super().__init__()

        # initialize layers
        self.fc1 = nn.Linear(num_inputs, num_hidden)

        # Default RLeaky Layer where recurrent connections
        # are initialized using PyTorch defaults in nn.Linear.
        self.lif1 = snn.RLeaky(beta=beta,
                    linear_features=num_hidden)

        self.fc2 = nn.Linear(num_hidden, num_outputs)

        # each neuron has a single connection back to itself
        # where the output spike is scaled by V.
        self.lif2 = snn.RLeaky(beta=beta, all_to_all=False, V=V1)

    def forward(self, x):
        # Initialize hidden states at t=0
        spk1, mem1 = self.lif1.init_rleaky()
        spk2, mem2 = self.lif2.init_rleaky()

        # Record output layer spikes and membrane
        spk2_rec = []
        mem2_rec = []

        # time-loop
        for step in range(num_steps):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, spk1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, spk2, mem2)

            spk2_rec.append(spk2)
            mem2_rec.append(mem2)

        # convert lists to tensors
        spk2_rec = torch.stack(spk2_rec)
        mem2_rec = torch.stack(mem2_rec)

        return spk2_rec, mem2_rec
'''

# snntorch RSynaptic docstring example (same structure as RLeaky, with a synaptic current).
RSYNAPTIC = '''
import torch
import torch.nn as nn
import snntorch as snn

num_inputs, num_hidden, num_outputs, num_steps = 784, 1000, 10, 25  # 1.0.0: the docstring leaves these undefined

alpha = 0.9
beta = 0.5
V1 = 0.5

class Net(nn.Module):
    def __init__(self):
        super().__init__()

        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.RSynaptic(alpha=alpha, beta=beta, linear_features=num_hidden)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.RSynaptic(alpha=alpha, beta=beta, all_to_all=False, V=V1)

    def forward(self, x):
        spk1, syn1, mem1 = self.lif1.init_rsynaptic()
        spk2, syn2, mem2 = self.lif2.init_rsynaptic()

        spk2_rec = []
        mem2_rec = []

        for step in range(num_steps):
            cur1 = self.fc1(x)
            spk1, syn1, mem1 = self.lif1(cur1, spk1, syn1, mem1)
            cur2 = self.fc2(spk1)
            spk2, syn2, mem2 = self.lif2(cur2, spk2, syn2, mem2)

            spk2_rec.append(spk2)
            mem2_rec.append(mem2)

        return torch.stack(spk2_rec), torch.stack(mem2_rec)
'''

# snntorch Leaky docstring example: the neuron states are forward's arguments, threaded by the caller.
STATES_AS_ARGUMENTS = '''
import torch
import torch.nn as nn
import snntorch as snn

num_inputs, num_hidden, num_outputs = 784, 1000, 10  # 1.0.0: the docstring leaves these undefined

beta = 0.5

# Define Network
class Net(nn.Module):
    def __init__(self):
        super().__init__()

        # initialize layers
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x, mem1, spk1, mem2):
        cur1 = self.fc1(x)
        spk1, mem1 = self.lif1(cur1, mem1)
        cur2 = self.fc2(spk1)
        spk2, mem2 = self.lif2(cur2, mem2)
        return mem1, spk1, mem2, spk2
'''

SOURCES = {"tutorial5": TUTORIAL5, "tutorial6_sequential": TUTORIAL6_SEQUENTIAL, "tutorial6_class": TUTORIAL6_CLASS,
           "synaptic": SYNAPTIC, "rleaky": RLEAKY, "rsynaptic": RSYNAPTIC, "states_as_arguments": STATES_AS_ARGUMENTS}


def namespace(name: str) -> dict:
    """The module globals of tutorial ``name`` after running its code."""
    ns: dict = {"__name__": f"tutorial_{name}"}
    exec(compile(SOURCES[name], f"<{name}>", "exec"), ns)
    return ns


def write(name: str, folder: Path) -> Path:
    """Save tutorial ``name`` as ``folder/name.py`` (an ``--arch`` file)."""
    path = Path(folder) / f"{name}.py"
    path.write_text(SOURCES[name])
    return path
