// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IRenewalMandates} from "../../src/interfaces/IRenewalMandates.sol";
import {ISubscriptionCheckout} from "../../src/interfaces/ISubscriptionCheckout.sol";
import {MandateFixture} from "../utils/MandateFixture.sol";

/// @title MandateGasBench
/// @notice Gas of a renewal `charge` beside a bare ERC-20 `transferFrom` of the same amount
/// between the same accounts, in the same run. Run it isolated:
/// `forge test --match-path test/bench/MandateGas.t.sol --isolate -vv`. With `--isolate`
/// forge runs every call the test makes as its own transaction, so `vm.lastCallGas` is the
/// transaction's gas (21,000, calldata, cold accesses, storage writes against the values at
/// the transaction's start, refunds): what the renewer pays, comparable to
/// `scripts/bench-gas`. Without it the figures are execution gas inside one long test
/// transaction (no base cost, rewrites of slots already written by the test are cheap); the
/// test then says so and still passes, so the full suite runs it as a smoke test.
/// @dev Steady state, as the Rust gas bench measures `pay`: the treasury's balance and the
/// paid-order word are already non-zero, the mandate is registered, and the payer's
/// allowance (cap × charges) stays non-zero, so no figure carries a first-write surcharge or
/// a refund. `pay` is measured too, as a check of the method against `scripts/bench-gas`.
contract MandateGasBench is MandateFixture {
    uint256 private constant RUNS = 12;
    address private constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    address private spender;
    bool private _isolated = true;

    function setUp() public override {
        super.setUp();
        spender = makeAddr("spender");
        // Steady state: the treasury holds tokens and order ids 0-255 share a non-zero word.
        _approveAndPay(_quote(0));
    }

    function test_bench_chargeBesideTransferFrom() public {
        // Arrange: a registered mandate with the bounded allowance; the same allowance for the
        // baseline's spender
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        vm.startPrank(payer);
        usd.approve(address(checkout), CAP * (RUNS + 1));
        usd.approve(spender, CAP * (RUNS + 1));
        vm.stopPrank();

        // Act: one charge per period, then the same number of bare transfers
        uint256 chargeGas;
        for (uint256 k; k < RUNS; ++k) {
            vm.warp(m.start + k * MONTH);
            chargeGas += _measure(renewer, address(checkout), abi.encodeCall(checkout.charge, (m, "", 1 + k, PRICE)));
        }
        uint256 transferGas;
        for (uint256 k; k < RUNS; ++k) {
            transferGas += _measure(spender, address(usd), abi.encodeCall(usd.transferFrom, (payer, treasury, PRICE)));
        }

        // Assert: every charge landed; report
        assertEq(checkout.mandateState(_mandateDigest(m)).charges, RUNS, "charges");
        _report("charge (mandate registered), mean", chargeGas / RUNS);
        _report("ERC-20 transferFrom, mean", transferGas / RUNS);
        _log("charge / transferFrom, x1000", chargeGas * 1000 / transferGas);
    }

    function test_bench_firstChargeRegisteringTheMandate() public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);
        bytes memory data = abi.encodeCall(checkout.charge, (m, _signMandate(m), 1, PRICE));

        // Act
        uint256 gas = _measure(renewer, address(checkout), data);

        // Assert / report
        assertTrue(checkout.mandateState(_mandateDigest(m)).registered, "registered");
        _report("first charge registering the mandate", gas);
    }

    function test_bench_registerMandateAlone() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory data = abi.encodeCall(checkout.registerMandate, (m, _signMandate(m)));

        uint256 gas = _measure(stranger, address(checkout), data);

        _report("registerMandate", gas);
    }

    function test_bench_payForTheMethodCheck() public {
        // The payer approves more than it pays, so no refund for clearing the allowance skews it
        _approve(payer, PRICE * (RUNS + 1));
        uint256 gas;
        for (uint256 k; k < RUNS; ++k) {
            ISubscriptionCheckout.Quote memory q = _quote(1 + k);
            gas += _measure(payer, address(checkout), abi.encodeCall(checkout.pay, (q, _sign(q))));
        }
        _report("pay (method check), mean", gas / RUNS);
    }

    // ---------------------------------------------------------------- measuring

    /// @dev Calls `target` with `data` from `from`; returns `vm.lastCallGas`'s total, the
    /// transaction's gas under `--isolate`.
    function _measure(address from, address target, bytes memory data) private returns (uint256 gas) {
        vm.prank(from);
        (bool ok, bytes memory reason) = target.call(data);
        if (!ok) revert(string.concat("measured call reverted: ", vm.toString(reason)));
        gas = vm.lastCallGas().gasTotalUsed;
        // A transaction costs at least 21,000: a smaller figure means the run is not isolated.
        if (gas < 21_000) _isolated = false;
    }

    function _report(string memory what, uint256 gas) private view {
        _log(string.concat(what, _isolated ? ", transaction gas" : ", execution gas (not isolated)"), gas);
    }

    function _log(string memory what, uint256 value) private view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", what, value));
        ok;
    }
}
