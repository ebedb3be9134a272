// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SubscriptionCheckout} from "../../src/SubscriptionCheckout.sol";
import {TestToken} from "../../devnet/TestToken.sol";
import {InvariantTest} from "../utils/InvariantTest.sol";
import {CheckoutHandler} from "./CheckoutHandler.sol";

/// @title SubscriptionCheckoutInvariantTest
/// @notice Invariant tests of SubscriptionCheckout under random sequences of payments (with
/// approval or permit, in two tokens), replays of paid order ids under new valid quotes,
/// invalid quotes and time passing (see CheckoutHandler):
/// - an order id is paid at most once, and `isOrderPaid` is true exactly for paid ids;
/// - the treasury gains exactly the sum of the quoted amounts of successful payments, per token;
/// - the checkout never holds tokens, and every minted token is with a payer or the treasury;
/// - every call succeeded or reverted exactly as predicted (replays with OrderAlreadyPaid).
contract SubscriptionCheckoutInvariantTest is InvariantTest {
    uint256 private constant START = 1_750_000_000;

    SubscriptionCheckout private checkout;
    CheckoutHandler private handler;
    address private treasury;

    function setUp() public {
        vm.warp(START);
        (address signer, uint256 signerKey) = makeAddrAndKey("quote signer");
        treasury = makeAddr("treasury");
        checkout = new SubscriptionCheckout(makeAddr("owner"), signer, treasury);
        handler = new CheckoutHandler(checkout, signerKey, 4);

        bytes4[] memory selectors = new bytes4[](6);
        selectors[0] = CheckoutHandler.pay.selector;
        selectors[1] = CheckoutHandler.payWithPermit.selector;
        selectors[2] = CheckoutHandler.replay.selector;
        selectors[3] = CheckoutHandler.replay.selector; // replays weigh double
        selectors[4] = CheckoutHandler.payInvalid.selector;
        selectors[5] = CheckoutHandler.warp.selector;
        targetContract(address(handler));
        targetSelector(address(handler), selectors);
    }

    function invariant_everyCallMatchedThePrediction() public view {
        assertEq(handler.violations(), 0, handler.lastViolation());
    }

    /// @notice An order id is paid at most once, and the contract knows it is paid.
    function invariant_orderIdPaidAtMostOnce() public view {
        uint256[] memory ids = handler.paidIds();
        for (uint256 i; i < ids.length; ++i) {
            assertEq(handler.timesPaid(ids[i]), 1, "times paid");
            assertTrue(checkout.isOrderPaid(ids[i]), "isOrderPaid");
        }
    }

    /// @notice Orders whose only attempts were invalid, and ids not handed out yet, are unpaid.
    function invariant_unpaidOrdersStayUnpaid() public view {
        uint256[] memory rejected = handler.rejectedIds();
        for (uint256 i; i < rejected.length; ++i) {
            assertFalse(checkout.isOrderPaid(rejected[i]), "rejected order paid");
        }
        uint256 next = handler.nextOrderId();
        for (uint256 id = next; id < next + 4; ++id) {
            assertFalse(checkout.isOrderPaid(id), "future order paid");
        }
    }

    /// @notice The treasury gains exactly the sum of quoted amounts, token by token.
    function invariant_treasuryGainsExactlySumOfQuotedAmounts() public view {
        TestToken[2] memory tokens = handler.tokens();
        for (uint256 t; t < tokens.length; ++t) {
            assertEq(tokens[t].balanceOf(treasury), handler.quotedSum(address(tokens[t])), tokens[t].symbol());
        }
    }

    /// @notice No token is stuck in the checkout or lost: supply = payers + treasury.
    function invariant_tokensAreConserved() public view {
        TestToken[2] memory tokens = handler.tokens();
        address[] memory payers = handler.payers();
        for (uint256 t; t < tokens.length; ++t) {
            assertEq(tokens[t].balanceOf(address(checkout)), 0, "checkout balance");
            uint256 held = tokens[t].balanceOf(treasury);
            for (uint256 p; p < payers.length; ++p) {
                held += tokens[t].balanceOf(payers[p]);
            }
            assertEq(held, tokens[t].totalSupply(), "supply accounted for");
        }
    }
}
