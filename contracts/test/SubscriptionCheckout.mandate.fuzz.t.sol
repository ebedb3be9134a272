// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SubscriptionCheckout} from "../src/SubscriptionCheckout.sol";
import {ISubscriptionCheckout} from "../src/interfaces/ISubscriptionCheckout.sol";
import {IRenewalMandates} from "../src/interfaces/IRenewalMandates.sol";
import {MandateFixture} from "./utils/MandateFixture.sol";

/// @title SubscriptionCheckoutMandateFuzzTest
/// @notice Fuzz tests of renewal mandates over caps, amounts, periods, early windows, charge
/// times, charge counts, expiries and signatures: a charge above the cap, outside its
/// period's window anchored to `start`, beyond `maxCharges` or after `validUntil` always
/// reverts and one inside all bounds always succeeds with exactly its amount; a malleated,
/// foreign or random signature, or one made for another chain or another checkout, never
/// registers a mandate.
/// @dev Runs and seed come from foundry.toml (`[fuzz]`), so failures reproduce.
contract SubscriptionCheckoutMandateFuzzTest is MandateFixture {
    uint256 private constant MAX_CAP = 1e30;

    /// @dev Funds the payer with `total` and approves exactly that much.
    function _fundAndApprove(uint256 total) private {
        _fund(payer, total);
        _approve(payer, total);
    }

    // ================================================================ cap

    function testFuzz_charge_neverTakesMoreThanTheCap(uint256 cap, uint256 amount) public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.maxAmount = bound(cap, 1, MAX_CAP);
        amount = bound(amount, 1, MAX_CAP + 1);
        bytes memory signature = _signMandate(m);
        _fundAndApprove(amount);
        uint256 treasuryBefore = usd.balanceOf(treasury);

        // Act / Assert
        if (amount > m.maxAmount) {
            vm.expectRevert(
                abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__ChargeAboveCap.selector, amount, m.maxAmount)
            );
            _charge(m, signature, 1, amount);
            assertEq(usd.balanceOf(treasury), treasuryBefore, "nothing moved");
            assertFalse(checkout.isOrderPaid(1), "order unpaid");
        } else {
            _charge(m, signature, 1, amount);
            assertEq(usd.balanceOf(treasury) - treasuryBefore, amount, "exactly the amount");
            assertTrue(checkout.isOrderPaid(1), "order paid");
        }
    }

    // ================================================================ spacing

    /// @dev Eight charge attempts at increasing times; each succeeds exactly when a period
    /// after the last charged one has its window open, and then pays the period holding now.
    function testFuzz_charge_onlyOncePerPeriodInsideWindowsAnchoredToStart(
        uint32 period,
        uint32 earlyWindow,
        uint64 startOffset,
        uint32[8] memory steps
    ) public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.period = uint32(bound(period, 1, 400 days));
        m.earlyWindow = uint32(bound(earlyWindow, 0, m.period - 1));
        m.start = uint64(block.timestamp + bound(startOffset, 0, 60 days));
        m.maxCharges = type(uint32).max;
        m.validUntil = type(uint64).max;
        bytes32 id = _mandateDigest(m);
        _register(m);
        _fundAndApprove(CAP * steps.length);

        uint256 t = block.timestamp;
        uint256 nextPeriod;
        uint256 charges;
        for (uint256 i; i < steps.length; ++i) {
            t += bound(steps[i], 0, 2 * uint256(m.period));
            vm.warp(t);
            uint256 opensAt = uint256(m.start) + nextPeriod * m.period;
            bool open = t + m.earlyWindow >= opensAt;

            // Act / Assert
            vm.prank(renewer);
            try checkout.charge(m, "", 1000 + i, CAP) {
                assertTrue(open, "charged before its window");
                uint256 paid = (t + m.earlyWindow - m.start) / m.period;
                // The period charged holds now: its window contains t.
                assertLe(m.start + paid * m.period, t + m.earlyWindow);
                assertLt(t, m.start + (paid + 1) * m.period);
                assertGe(paid, nextPeriod);
                nextPeriod = paid + 1;
                ++charges;
            } catch (bytes memory reason) {
                assertFalse(open, "refused inside an open window");
                assertEq(
                    reason,
                    abi.encodeWithSelector(
                        IRenewalMandates.SubscriptionCheckout__ChargeTooEarly.selector,
                        id,
                        opensAt > m.earlyWindow ? opensAt - m.earlyWindow : 0,
                        t
                    )
                );
            }
        }

        // Assert: the contract's record matches, and no two charges share a period
        IRenewalMandates.MandateState memory state = checkout.mandateState(id);
        assertEq(state.charges, charges, "charges");
        assertEq(state.nextPeriod, nextPeriod, "next period");
        assertEq(usd.balanceOf(treasury), charges * CAP, "treasury");
        assertLe(charges, nextPeriod);
    }

    // ================================================================ count

    function testFuzz_charge_neverMoreChargesThanSigned(uint32 maxCharges, uint32 attempts) public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.maxCharges = uint32(bound(maxCharges, 1, 24));
        attempts = uint32(bound(attempts, m.maxCharges, 30));
        m.validUntil = m.start + uint64(attempts) * MONTH;
        _register(m);
        _fundAndApprove(CAP * attempts);

        // Act: one attempt in every period
        uint256 succeeded;
        for (uint256 k; k < attempts; ++k) {
            vm.warp(m.start + k * MONTH);
            vm.prank(renewer);
            try checkout.charge(m, "", 1 + k, CAP) {
                ++succeeded;
            } catch (bytes memory reason) {
                assertGe(k, m.maxCharges); // refused only beyond the count
                assertEq(
                    reason,
                    abi.encodeWithSelector(
                        IRenewalMandates.SubscriptionCheckout__MandateExhausted.selector, _mandateDigest(m), m.maxCharges
                    )
                );
            }
        }

        // Assert
        assertEq(succeeded, m.maxCharges, "charges");
        assertEq(usd.balanceOf(treasury), CAP * m.maxCharges, "at most cap x charges");
    }

    // ================================================================ expiry

    function testFuzz_charge_neverAfterValidUntil(uint64 validFor, uint64 wait) public {
        // Arrange: a mandate valid for `validFor` seconds, charged once after `wait`
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.validUntil = m.start + uint64(bound(validFor, 0, 3 * 365 days));
        _register(m);
        _fundAndApprove(CAP);
        uint256 t = m.start + bound(wait, 0, MONTH - 1); // always inside period 0's window
        vm.warp(t);

        // Act / Assert
        if (t > m.validUntil) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IRenewalMandates.SubscriptionCheckout__MandateExpired.selector, _mandateDigest(m), m.validUntil, t
                )
            );
            _charge(m, "", 1, CAP);
            assertEq(usd.balanceOf(treasury), 0, "nothing moved");
        } else {
            _charge(m, "", 1, CAP);
            assertEq(usd.balanceOf(treasury), CAP, "charged");
        }
    }

    function testFuzz_charge_neverAfterRevoke(uint256 chargesBefore, uint64 wait) public {
        // Arrange: some charges, then a revoke, then time passes
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        _fundAndApprove(CAP * CHARGES);
        chargesBefore = bound(chargesBefore, 0, CHARGES - 1);
        for (uint256 k; k < chargesBefore; ++k) {
            vm.warp(m.start + k * MONTH);
            _charge(m, "", 1 + k, CAP);
        }
        vm.prank(payer);
        checkout.revokeMandate(m);
        vm.warp(block.timestamp + bound(wait, 0, m.validUntil - block.timestamp));

        // Act / Assert
        vm.expectRevert(
            abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__MandateRevoked.selector, _mandateDigest(m))
        );
        _charge(m, "", 100, CAP);
        assertEq(usd.balanceOf(treasury), CAP * chargesBefore, "nothing after the revoke");
    }

    // ================================================================ signatures

    function testFuzz_registerMandate_refusesTheMalleatedTwinOfAValidSignature(uint256 salt) public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.salt = salt;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, _mandateDigest(m));
        bytes memory twin = abi.encodePacked(r, bytes32(SECP256K1_ORDER - uint256(s)), v == 27 ? uint8(28) : uint8(27));

        // Act / Assert: the twin is refused before and after the original registers
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.registerMandate(m, twin);
        checkout.registerMandate(m, abi.encodePacked(r, s, v));
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__MandateAlreadyRegistered.selector, _mandateDigest(m)
            )
        );
        checkout.registerMandate(m, twin);
    }

    function testFuzz_registerMandate_refusesAnyOtherKeyOrRandomBytes(uint256 otherKey, bytes memory junk) public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        otherKey = boundPrivateKey(otherKey);
        vm.assume(otherKey != payerKey);

        // Act / Assert
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.registerMandate(m, _signDigest(otherKey, _mandateDigest(m)));
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.registerMandate(m, junk);
        assertFalse(checkout.mandateState(_mandateDigest(m)).registered);
    }

    function testFuzz_charge_refusesAMandateSignedForAnotherChain(uint256 chainId) public {
        // Arrange: signed for `chainId`, presented here
        chainId = bound(chainId, 1, type(uint64).max);
        vm.assume(chainId != block.chainid);
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signDigest(payerKey, _mandateDigest(m, chainId, address(checkout)));
        _fundAndApprove(CAP);

        // Act / Assert
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        _charge(m, signature, 1, CAP);

        // And on that chain it is the one valid there (a fork of this checkout)
        vm.chainId(chainId);
        _charge(m, signature, 1, CAP);
        assertEq(usd.balanceOf(treasury), CAP);
    }

    function testFuzz_charge_refusesAMandateSignedForAnotherCheckout(address otherCheckout) public {
        // Arrange: signed for another verifying contract
        vm.assume(otherCheckout != address(checkout));
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signDigest(payerKey, _mandateDigest(m, block.chainid, otherCheckout));
        _fundAndApprove(CAP);

        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        _charge(m, signature, 1, CAP);
    }

    function testFuzz_charge_registeredOnOneCheckoutIsNothingOnAnother(uint256 salt) public {
        // Arrange: the same renewer on a second checkout; the mandate is registered on the first
        SubscriptionCheckout second = new SubscriptionCheckout(owner, signer, treasury);
        vm.prank(owner);
        second.setRenewer(renewer);
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.salt = salt;
        bytes memory signature = _signMandate(m);
        _register(m);
        vm.prank(payer);
        usd.approve(address(second), CAP);

        // Act / Assert: its signature and its registration mean nothing there
        vm.startPrank(renewer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        second.charge(m, signature, 1, CAP);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        second.charge(m, "", 1, CAP);
        vm.stopPrank();
        assertNotEq(second.mandateDigest(m), checkout.mandateDigest(m));
    }

    // ================================================================ digest

    function testFuzz_mandateDigest_matchesEip712(IRenewalMandates.RenewalMandate memory m) public view {
        assertEq(checkout.mandateDigest(m), _mandateDigest(m));
    }
}
