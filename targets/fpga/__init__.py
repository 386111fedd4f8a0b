"""The FPGA target: synthesizable Verilog generated from the fixed IR, simulated bit-exactly.

``plan`` lowers a fixed IR into a hardware plan (cores, spike lists, memory images, bit widths),
``render`` turns the plan into Verilog with the jinja2 templates in ``templates/``, ``simulate``
runs the generated testbench in Icarus Verilog or Verilator, ``report`` lints and synthesizes the
design with Verilator and yosys, ``pnr`` places and routes it (nextpnr-ice40) after ``gatelevel``
has checked the synthesized netlist against the RTL; ``lanes`` chooses the synapse lanes per core
and ``cycles`` is the cycle formula. docs/targets/fpga.md describes the architecture.
"""
