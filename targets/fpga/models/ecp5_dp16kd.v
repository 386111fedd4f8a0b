// DP16KD: a behavioural model of the Lattice ECP5 sysMEM 18-kbit block RAM, written by snnhw for the
// gate-level check (targets/fpga/gatelevel.py), because yosys 0.23 has only its parameters
// (share/yosys/ecp5/cells_sim.v), no read or write behaviour. It replaces that module in the check.
//
// The array is 1,024 rows of 18 bits. INITVAL_xx (xx = 00..3F, 320 bits) holds rows 16*xx .. 16*xx+15,
// row i in bits [20*i+17 : 20*i] (bits 20*i+18, 20*i+19 unused): the packing of yosys 0.23's
// share/yosys/ecp5/brams_map.v (init_slice), which Project Trellis writes into the bitstream.
// A port of data width W (DATA_WIDTH_A/B) addresses the array in bit units, AD[13:0], with the nine-bit
// bytes of W = 9, 18, 36 counted as eight (Lattice TN1264, ECP5 Memory Usage Guide; the same packing
// yosys's memory_libmap gives INIT):
//   W = 1, 2, 4: data bit d = AD[13:0] with its log2(W) low bits cleared, in row d/16, at bit
//                (d % 16) + 1 when d % 16 >= 8 (bits 8 and 17 of a row, the ninth bits, are unused);
//   W = 9:  bits [9*AD[3]+8 : 9*AD[3]] of row AD[13:4];
//   W = 18: row AD[13:4]; AD[1:0] are the byte write enables (bits 8:0, 17:9);
//   W = 36 (pseudo dual port, both ports 36): port A writes, port B reads rows 2*AD[13:5] (DIA/DOA)
//          and 2*AD[13:5]+1 (DIB/DOB); ADA[3:0] are the byte write enables.
// Modelled configuration (what synth_ecp5 emits for snnhw's designs, docs/targets/fpga.md): REGMODE
// NOREG (read data registered once, at the port's rising clock edge, when CE is high and the chip
// select pins are 000 = CSDECODE "0b000"), CLKxMUX CLKx, RST low, WRITEMODE NORMAL (output kept),
// WRITETHROUGH (output = new data) or READBEFOREWRITE (output = old data). A read of a row that the
// other port writes at the same edge is a collision the data sheet leaves undefined: that read gives
// x. Any other configuration stops the simulation ($display "ERROR: ..." and $finish), so a netlist
// that uses one is never judged equal to the RTL.
module DP16KD (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA,
    input CSA2, CSA1, CSA0,
    output reg DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB,
    input CSB2, CSB1, CSB0,
    output reg DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter GSR = "ENABLED";
    parameter INITVAL_00 = 320'h0;
    parameter INITVAL_01 = 320'h0;
    parameter INITVAL_02 = 320'h0;
    parameter INITVAL_03 = 320'h0;
    parameter INITVAL_04 = 320'h0;
    parameter INITVAL_05 = 320'h0;
    parameter INITVAL_06 = 320'h0;
    parameter INITVAL_07 = 320'h0;
    parameter INITVAL_08 = 320'h0;
    parameter INITVAL_09 = 320'h0;
    parameter INITVAL_0A = 320'h0;
    parameter INITVAL_0B = 320'h0;
    parameter INITVAL_0C = 320'h0;
    parameter INITVAL_0D = 320'h0;
    parameter INITVAL_0E = 320'h0;
    parameter INITVAL_0F = 320'h0;
    parameter INITVAL_10 = 320'h0;
    parameter INITVAL_11 = 320'h0;
    parameter INITVAL_12 = 320'h0;
    parameter INITVAL_13 = 320'h0;
    parameter INITVAL_14 = 320'h0;
    parameter INITVAL_15 = 320'h0;
    parameter INITVAL_16 = 320'h0;
    parameter INITVAL_17 = 320'h0;
    parameter INITVAL_18 = 320'h0;
    parameter INITVAL_19 = 320'h0;
    parameter INITVAL_1A = 320'h0;
    parameter INITVAL_1B = 320'h0;
    parameter INITVAL_1C = 320'h0;
    parameter INITVAL_1D = 320'h0;
    parameter INITVAL_1E = 320'h0;
    parameter INITVAL_1F = 320'h0;
    parameter INITVAL_20 = 320'h0;
    parameter INITVAL_21 = 320'h0;
    parameter INITVAL_22 = 320'h0;
    parameter INITVAL_23 = 320'h0;
    parameter INITVAL_24 = 320'h0;
    parameter INITVAL_25 = 320'h0;
    parameter INITVAL_26 = 320'h0;
    parameter INITVAL_27 = 320'h0;
    parameter INITVAL_28 = 320'h0;
    parameter INITVAL_29 = 320'h0;
    parameter INITVAL_2A = 320'h0;
    parameter INITVAL_2B = 320'h0;
    parameter INITVAL_2C = 320'h0;
    parameter INITVAL_2D = 320'h0;
    parameter INITVAL_2E = 320'h0;
    parameter INITVAL_2F = 320'h0;
    parameter INITVAL_30 = 320'h0;
    parameter INITVAL_31 = 320'h0;
    parameter INITVAL_32 = 320'h0;
    parameter INITVAL_33 = 320'h0;
    parameter INITVAL_34 = 320'h0;
    parameter INITVAL_35 = 320'h0;
    parameter INITVAL_36 = 320'h0;
    parameter INITVAL_37 = 320'h0;
    parameter INITVAL_38 = 320'h0;
    parameter INITVAL_39 = 320'h0;
    parameter INITVAL_3A = 320'h0;
    parameter INITVAL_3B = 320'h0;
    parameter INITVAL_3C = 320'h0;
    parameter INITVAL_3D = 320'h0;
    parameter INITVAL_3E = 320'h0;
    parameter INITVAL_3F = 320'h0;

    reg [17:0] mem [0:1023];
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire pdp = (DATA_WIDTH_A == 36);           // pseudo dual port: A writes 36 bits, B reads 36 bits
    wire sel_a = CEA === 1'b1 && {CSA2, CSA1, CSA0} === 3'b000;
    wire sel_b = CEB === 1'b1 && {CSB2, CSB1, CSB0} === 3'b000;

    task load(input [7:0] block, input [319:0] value);
        integer i;
        for (i = 0; i < 16; i = i + 1) mem[block * 16 + i] = value[20 * i +: 18];
    endtask

    function ok_width(input integer w);
        ok_width = (w == 1) || (w == 2) || (w == 4) || (w == 9) || (w == 18);
    endfunction

    function ok_mode(input [8*15-1:0] m);
        ok_mode = (m == "NORMAL") || (m == "WRITETHROUGH") || (m == "READBEFOREWRITE");
    endfunction

    initial begin
        if (!((DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36) || (ok_width(DATA_WIDTH_A) && ok_width(DATA_WIDTH_B)))) begin
            $display("ERROR: DP16KD data widths %0d/%0d are outside the model (1, 2, 4, 9, 18, or 36 pseudo dual port)",
                     DATA_WIDTH_A, DATA_WIDTH_B);
            $finish;
        end
        if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG" || CLKAMUX != "CLKA" || CLKBMUX != "CLKB"
                || CSDECODE_A != "0b000" || CSDECODE_B != "0b000"
                || !ok_mode(WRITEMODE_A) || !ok_mode(WRITEMODE_B)) begin
            $display("ERROR: DP16KD configuration outside the model (REGMODE, CLKMUX, CSDECODE or WRITEMODE)");
            $finish;
        end
        {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = 18'd0;
        {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = 18'd0;
        load(8'h00, INITVAL_00);
        load(8'h01, INITVAL_01);
        load(8'h02, INITVAL_02);
        load(8'h03, INITVAL_03);
        load(8'h04, INITVAL_04);
        load(8'h05, INITVAL_05);
        load(8'h06, INITVAL_06);
        load(8'h07, INITVAL_07);
        load(8'h08, INITVAL_08);
        load(8'h09, INITVAL_09);
        load(8'h0A, INITVAL_0A);
        load(8'h0B, INITVAL_0B);
        load(8'h0C, INITVAL_0C);
        load(8'h0D, INITVAL_0D);
        load(8'h0E, INITVAL_0E);
        load(8'h0F, INITVAL_0F);
        load(8'h10, INITVAL_10);
        load(8'h11, INITVAL_11);
        load(8'h12, INITVAL_12);
        load(8'h13, INITVAL_13);
        load(8'h14, INITVAL_14);
        load(8'h15, INITVAL_15);
        load(8'h16, INITVAL_16);
        load(8'h17, INITVAL_17);
        load(8'h18, INITVAL_18);
        load(8'h19, INITVAL_19);
        load(8'h1A, INITVAL_1A);
        load(8'h1B, INITVAL_1B);
        load(8'h1C, INITVAL_1C);
        load(8'h1D, INITVAL_1D);
        load(8'h1E, INITVAL_1E);
        load(8'h1F, INITVAL_1F);
        load(8'h20, INITVAL_20);
        load(8'h21, INITVAL_21);
        load(8'h22, INITVAL_22);
        load(8'h23, INITVAL_23);
        load(8'h24, INITVAL_24);
        load(8'h25, INITVAL_25);
        load(8'h26, INITVAL_26);
        load(8'h27, INITVAL_27);
        load(8'h28, INITVAL_28);
        load(8'h29, INITVAL_29);
        load(8'h2A, INITVAL_2A);
        load(8'h2B, INITVAL_2B);
        load(8'h2C, INITVAL_2C);
        load(8'h2D, INITVAL_2D);
        load(8'h2E, INITVAL_2E);
        load(8'h2F, INITVAL_2F);
        load(8'h30, INITVAL_30);
        load(8'h31, INITVAL_31);
        load(8'h32, INITVAL_32);
        load(8'h33, INITVAL_33);
        load(8'h34, INITVAL_34);
        load(8'h35, INITVAL_35);
        load(8'h36, INITVAL_36);
        load(8'h37, INITVAL_37);
        load(8'h38, INITVAL_38);
        load(8'h39, INITVAL_39);
        load(8'h3A, INITVAL_3A);
        load(8'h3B, INITVAL_3B);
        load(8'h3C, INITVAL_3C);
        load(8'h3D, INITVAL_3D);
        load(8'h3E, INITVAL_3E);
        load(8'h3F, INITVAL_3F);
    end

    always @* begin
        if (RSTA === 1'b1 || RSTB === 1'b1) begin
            $display("ERROR: DP16KD output reset (RSTA/RSTB) is outside the model");
            $finish;
        end
    end

    // the row a port address ad selects at width w (36: the first of its two rows)
    function [9:0] row_of(input integer w, input [13:0] ad);
        row_of = (w == 36) ? {ad[13:5], 1'b0} : ad[13:4];
    endfunction

    // bit offset in its row of the word at ad, for the widths 1, 2, 4 (the ninth bits skipped) and 9
    function [4:0] offset_of(input integer w, input [13:0] ad);
        reg [3:0] d;
        begin
            d = ad[3:0] & ~(w - 1);
            offset_of = (w == 9) ? (ad[3] ? 5'd9 : 5'd0) : {1'b0, d} + (d >= 4'd8 ? 5'd1 : 5'd0);
        end
    endfunction

    function [17:0] mask_of(input integer w);
        mask_of = (w >= 18) ? 18'h3ffff : ((18'd1 << w) - 18'd1);
    endfunction

    // the row after one port's write: the word at its offset (widths 1..9), or the enabled bytes
    // (18 and 36: be = the two byte enables of this row)
    function [17:0] written(input integer w, input [17:0] old, input [17:0] d, input [13:0] ad, input [1:0] be);
        begin
            written = old;
            if (w >= 18) begin
                if (be[0]) written[8:0] = d[8:0];
                if (be[1]) written[17:9] = d[17:9];
            end else begin
                written = (old & ~(mask_of(w) << offset_of(w, ad))) | ((d & mask_of(w)) << offset_of(w, ad));
            end
        end
    endfunction

    // does the port's write change any bit (18 and 36 need a byte enable)
    function writes(input integer w, input we, input [13:0] ad);
        writes = we && (w < 18 || (w == 18 && ad[1:0] != 2'b00) || (w == 36 && ad[3:0] != 4'b0000));
    endfunction

    function [17:0] read_word(input integer w, input [17:0] row, input [13:0] ad);
        read_word = (w >= 18) ? row : ((row >> offset_of(w, ad)) & mask_of(w));
    endfunction

    // Both ports in one process, so a collision sees both; writes are non-blocking (reads at an edge
    // see the rows before it).
    reg [9:0] ra, rb;
    reg wa, wb, hit_a, hit_b;
    always @(posedge CLKA or posedge CLKB) begin
        ra = row_of(DATA_WIDTH_A, ada);
        rb = row_of(DATA_WIDTH_B, adb);
        wa = CLKA === 1'b1 && sel_a && writes(DATA_WIDTH_A, WEA === 1'b1, ada);
        wb = CLKB === 1'b1 && sel_b && writes(DATA_WIDTH_B, WEB === 1'b1, adb);
        if (pdp) begin
            if (wb) begin
                $display("ERROR: DP16KD write on port B in pseudo dual port mode is outside the model");
                $finish;
            end
            if (CLKB === 1'b1 && sel_b)
                {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0, DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0}
                    <= (wa && ra == rb) ? 36'bx : {mem[rb + 10'd1], mem[rb]};
            if (wa) begin
                mem[ra] <= written(18, mem[ra], dia, ada, ada[1:0]);
                mem[ra + 10'd1] <= written(18, mem[ra + 10'd1], dib, ada, ada[3:2]);
            end
        end else begin
            hit_a = wb && ra == rb;               // port B writes the row port A reads
            hit_b = wa && ra == rb;
            if (CLKA === 1'b1 && sel_a) begin
                if (hit_a) {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} <= 18'bx;
                else if (WEA !== 1'b1 || WRITEMODE_A == "READBEFOREWRITE")
                    {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} <= read_word(DATA_WIDTH_A, mem[ra], ada);
                else if (WRITEMODE_A == "WRITETHROUGH")
                    {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} <= read_word(DATA_WIDTH_A, written(DATA_WIDTH_A, mem[ra], dia, ada, ada[1:0]), ada);
                if (wa) mem[ra] <= written(DATA_WIDTH_A, mem[ra], dia, ada, ada[1:0]);
            end
            if (CLKB === 1'b1 && sel_b) begin
                if (hit_b) {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} <= 18'bx;
                else if (WEB !== 1'b1 || WRITEMODE_B == "READBEFOREWRITE")
                    {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} <= read_word(DATA_WIDTH_B, mem[rb], adb);
                else if (WRITEMODE_B == "WRITETHROUGH")
                    {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} <= read_word(DATA_WIDTH_B, written(DATA_WIDTH_B, mem[rb], dib, adb, adb[1:0]), adb);
                if (wb) mem[rb] <= written(DATA_WIDTH_B, mem[rb], dib, adb, adb[1:0]);
            end
        end
    end
endmodule
