// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SubscriptionCheckout} from "../../src/SubscriptionCheckout.sol";
import {IRenewalMandates} from "../../src/interfaces/IRenewalMandates.sol";
import {InvariantTest} from "../utils/InvariantTest.sol";
import {MandateHandler} from "./MandateHandler.sol";

/// @title SubscriptionCheckoutMandateInvariantTest
/// @notice Invariant tests of renewal mandates under random sequences of signing, charging
/// (by the renewer, at random times or when due, at random amounts, sometimes above the
/// cap), charging by strangers, revoking and time passing (see MandateHandler):
/// - never more than the cap per billing period, and at most one charge per period;
/// - never a charge after a revoke or after `validUntil`, nor outside its period's window;
/// - never more charges than signed, and the contract's count matches every success;
/// - a payer never loses more than cap × charges per mandate, and the treasury gains
///   exactly what was charged;
/// - every call succeeded or reverted exactly as the rules predict.
contract SubscriptionCheckoutMandateInvariantTest is InvariantTest {
    uint256 private constant START = 1_750_000_000;

    SubscriptionCheckout private checkout;
    MandateHandler private handler;
    address private treasury;

    function setUp() public {
        vm.warp(START);
        address owner = makeAddr("owner");
        address renewer = makeAddr("renewer");
        treasury = makeAddr("treasury");
        checkout = new SubscriptionCheckout(owner, makeAddr("quote signer"), treasury);
        vm.prank(owner);
        checkout.setRenewer(renewer);
        handler = new MandateHandler(checkout, renewer, 3);

        bytes4[] memory selectors = new bytes4[](8);
        selectors[0] = MandateHandler.sign.selector;
        selectors[1] = MandateHandler.charge.selector;
        selectors[2] = MandateHandler.chargeWhenDue.selector; // charges when due weigh triple
        selectors[3] = MandateHandler.chargeWhenDue.selector;
        selectors[4] = MandateHandler.chargeWhenDue.selector;
        selectors[5] = MandateHandler.chargeAsStranger.selector;
        selectors[6] = MandateHandler.revoke.selector;
        selectors[7] = MandateHandler.warp.selector;
        targetContract(address(handler));
        targetSelector(address(handler), selectors);
    }

    function invariant_everyCallMatchedThePrediction() public view {
        assertEq(handler.violations(), 0, handler.lastViolation());
    }

    /// @notice No billing period of any mandate was charged more than the cap, or twice.
    function invariant_neverMoreThanTheCapPerPeriod() public view {
        assertEq(handler.aboveCap(), 0, "charges above the cap");
        uint256 count = handler.mandateCount();
        for (uint256 i; i < count; ++i) {
            IRenewalMandates.RenewalMandate memory m = handler.mandate(i);
            uint256 periods = handler.nextPeriodOf(i);
            for (uint256 k; k < periods; ++k) {
                assertLe(handler.chargedInPeriod(i, k), m.maxAmount);
                assertLe(handler.chargesInPeriod(i, k), 1);
            }
        }
    }

    /// @notice No charge after a revoke, after `validUntil`, or outside its anchored window.
    function invariant_neverAfterRevokeOrExpiryOrOutsideTheWindow() public view {
        assertEq(handler.afterRevoke(), 0, "charged after revoke");
        assertEq(handler.afterExpiry(), 0, "charged after validUntil");
        assertEq(handler.outsideWindow(), 0, "charged outside the window");
    }

    /// @notice No mandate charged more often than signed; the contract counts every charge.
    function invariant_neverMoreChargesThanSigned() public view {
        assertEq(handler.beyondCount(), 0, "charged beyond maxCharges");
        uint256 count = handler.mandateCount();
        for (uint256 i; i < count; ++i) {
            IRenewalMandates.RenewalMandate memory m = handler.mandate(i);
            IRenewalMandates.MandateState memory state = checkout.mandateState(checkout.mandateDigest(m));
            assertLe(state.charges, m.maxCharges);
            assertEq(state.charges, handler.chargesOf(i), "ghost count");
            assertEq(state.nextPeriod, handler.nextPeriodOf(i), "next period");
            assertEq(state.revoked, handler.revoked(i), "revoked");
        }
    }

    /// @notice The treasury holds exactly what was charged; the checkout holds nothing; every
    /// minted token is with a payer or the treasury.
    function invariant_tokensAreConserved() public view {
        assertEq(handler.token().balanceOf(treasury), handler.chargedSum(), "treasury");
        assertEq(handler.token().balanceOf(address(checkout)), 0, "checkout");
        address[] memory payers = handler.payers();
        uint256 held = handler.token().balanceOf(treasury);
        for (uint256 p; p < payers.length; ++p) {
            held += handler.token().balanceOf(payers[p]);
        }
        assertEq(held, handler.token().totalSupply(), "supply");
    }
}
