// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

import {SubscriptionCheckout} from "../src/SubscriptionCheckout.sol";
import {ISubscriptionCheckout} from "../src/interfaces/ISubscriptionCheckout.sol";
import {IRenewalMandates} from "../src/interfaces/IRenewalMandates.sol";
import {TestSmartWallet} from "../devnet/TestSmartWallet.sol";
import {MandateFixture} from "./utils/MandateFixture.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";
import {Vm} from "./utils/Vm.sol";

/// @title SubscriptionCheckoutMandateTest
/// @notice Unit tests of renewal mandates: registration (alone or with the first charge,
/// ECDSA and ERC-1271), `charge` and its events (the checkout's own `OrderPaid` plus
/// `MandateCharged`), every refusal (renewer, pause, revoke, expiry, count, cap, zero amount,
/// window, paid order, signature, malformed mandate, fee-on-transfer, allowance), the
/// windows anchored to `start` (no drift, missed periods skipped), `revokeMandate`,
/// `setRenewer`, and `mandateDigest` against a digest built independently.
/// Fuzz tests live in SubscriptionCheckout.mandate.fuzz.t.sol, invariants in
/// invariant/SubscriptionCheckout.mandate.invariant.t.sol.
contract SubscriptionCheckoutMandateTest is MandateFixture {
    // ================================================================ registration

    function test_registerMandate_storesItAndEmitsEveryField() public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes32 id = _mandateDigest(m);
        bytes memory signature = _signMandate(m);

        // Assert (expectation first), Act
        vm.expectEmit(true, true, true, true, address(checkout));
        emit IRenewalMandates.MandateRegistered(id, payer, PLAN, m);
        vm.prank(stranger);
        bytes32 returned = checkout.registerMandate(m, signature);

        // Assert
        assertEq(returned, id, "returned id");
        IRenewalMandates.MandateState memory state = checkout.mandateState(id);
        assertTrue(state.registered, "registered");
        assertFalse(state.revoked, "revoked");
        assertEq(state.charges, 0, "charges");
        assertEq(state.nextPeriod, 0, "next period");
    }

    function test_registerMandate_acceptsContractWalletSignature() public {
        // Arrange: an ERC-1271 wallet whose owner is `payer`'s key
        TestSmartWallet wallet = new TestSmartWallet(payer);
        IRenewalMandates.RenewalMandate memory m = _mandate(address(wallet));
        bytes memory signature = _signDigest(payerKey, _mandateDigest(m));
        _fund(address(wallet), CAP);
        vm.prank(address(wallet));
        usd.approve(address(checkout), CAP);

        // Act
        vm.prank(stranger);
        checkout.registerMandate(m, signature);
        _charge(m, "", 1, CAP);

        // Assert
        assertEq(usd.balanceOf(treasury), CAP, "treasury");
        assertEq(usd.balanceOf(address(wallet)), 0, "wallet");
    }

    function test_registerMandate_revertsWhen_contractWalletRefuses() public {
        TestSmartWallet wallet = new TestSmartWallet(payer);
        IRenewalMandates.RenewalMandate memory m = _mandate(address(wallet));
        bytes memory signature = _signDigest(signerKey, _mandateDigest(m)); // not the wallet's owner

        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.registerMandate(m, signature);
    }

    function test_registerMandate_revertsWhen_alreadyRegistered() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes32 id = _register(m);
        bytes memory signature = _signMandate(m);

        vm.expectRevert(
            abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__MandateAlreadyRegistered.selector, id)
        );
        checkout.registerMandate(m, signature);
    }

    function test_registerMandate_revertsWhen_signedByAnotherKey() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signDigest(signerKey, _mandateDigest(m));

        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.registerMandate(m, signature);
    }

    function test_registerMandate_revertsWhen_signatureIsHighS() public {
        // Arrange: the same signature with s' = n − s and the other v recovers to the same key
        // (ecrecover's malleability); OpenZeppelin's ECDSA refuses it.
        IRenewalMandates.RenewalMandate memory m = _mandate();
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, _mandateDigest(m));
        bytes memory malleated = abi.encodePacked(r, bytes32(SECP256K1_ORDER - uint256(s)), v == 27 ? 28 : 27);

        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.registerMandate(m, malleated);
    }

    function test_registerMandate_revertsWhen_signedForAnotherChain() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signDigest(payerKey, _mandateDigest(m, block.chainid + 1, address(checkout)));

        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.registerMandate(m, signature);
    }

    function test_registerMandate_revertsWhen_expired() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        vm.warp(m.validUntil + 1);

        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__MandateExpired.selector,
                _mandateDigest(m),
                m.validUntil,
                block.timestamp
            )
        );
        checkout.registerMandate(m, signature);
    }

    function test_registerMandate_revertsWhen_paused() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        vm.prank(owner);
        checkout.pause();

        vm.expectRevert(Pausable.EnforcedPause.selector);
        checkout.registerMandate(m, signature);
    }

    function test_registerMandate_revertsWhen_fieldOutOfRange() public {
        for (uint256 field; field < 6; ++field) {
            // Arrange: one bad field at a time, validly signed
            IRenewalMandates.RenewalMandate memory m = _mandate();
            if (field == 0) m.token = address(0);
            if (field == 1) m.maxAmount = 0;
            if (field == 2) m.maxCharges = 0;
            if (field == 3) m.period = 0;
            if (field == 4) m.earlyWindow = m.period; // windows would overlap
            if (field == 5) m.payer = address(0);
            bytes memory signature = _signMandate(m);

            vm.expectRevert(IRenewalMandates.SubscriptionCheckout__InvalidMandate.selector);
            checkout.registerMandate(m, signature);
        }
    }

    // ================================================================ charge: happy path

    function test_charge_registersAndChargesInOneTransaction() public {
        // Arrange
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes32 id = _mandateDigest(m);
        bytes memory signature = _signMandate(m);
        _approveMandate(m);
        uint256 payerBefore = usd.balanceOf(payer);

        // Assert (expectations first), Act
        vm.expectEmit(true, true, true, true, address(checkout));
        emit IRenewalMandates.MandateRegistered(id, payer, PLAN, m);
        vm.expectEmit(true, true, true, true, address(checkout));
        emit ISubscriptionCheckout.OrderPaid(7, payer, PLAN, address(usd), PRICE, 1);
        vm.expectEmit(true, true, true, true, address(checkout));
        emit IRenewalMandates.MandateCharged(id, 7, 1, 0, PRICE);
        _charge(m, signature, 7, PRICE);

        // Assert
        assertEq(usd.balanceOf(treasury), PRICE, "treasury");
        assertEq(payerBefore - usd.balanceOf(payer), PRICE, "payer");
        assertEq(usd.balanceOf(address(checkout)), 0, "checkout holds nothing");
        assertTrue(checkout.isOrderPaid(7), "order paid");
        IRenewalMandates.MandateState memory state = checkout.mandateState(id);
        assertTrue(state.registered, "registered");
        assertEq(state.charges, 1, "charges");
        assertEq(state.nextPeriod, 1, "next period");
    }

    function test_charge_emitsTheCheckoutsOrderPaidEvent() public {
        // Arrange: the watcher filters on OrderPaid's topic; a charge must carry the same one
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);
        vm.recordLogs();

        // Act
        _charge(m, _signMandate(m), 3, PRICE);

        // Assert
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 found;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(checkout) && logs[i].topics[0] == ORDER_PAID_TOPIC) {
                ++found;
                assertEq(logs[i].topics[1], bytes32(uint256(3)), "order id");
                assertEq(logs[i].topics[2], bytes32(uint256(uint160(payer))), "payer");
                assertEq(logs[i].topics[3], bytes32(uint256(PLAN)), "plan");
                assertEq(logs[i].data, abi.encode(address(usd), PRICE, uint32(1)), "token, amount, periods");
            }
        }
        assertEq(found, 1, "one OrderPaid");
    }

    function test_charge_withoutSignatureOnceRegistered() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        _approveMandate(m);

        _charge(m, "", 1, PRICE);

        assertEq(usd.balanceOf(treasury), PRICE);
    }

    function test_charge_acceptsExactlyTheCap() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);

        _charge(m, _signMandate(m), 1, CAP);

        assertEq(usd.balanceOf(treasury), CAP);
    }

    function test_charge_allBoundedAllowanceIsUsedByExactlyMaxChargesAtTheCap() public {
        // Arrange: the page's allowance is cap × charges, no more
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);
        bytes memory signature = _signMandate(m);

        // Act: one charge at the cap in every period
        for (uint256 k; k < CHARGES; ++k) {
            vm.warp(m.start + k * MONTH);
            _charge(m, k == 0 ? signature : bytes(""), 100 + k, CAP);
        }

        // Assert
        assertEq(usd.balanceOf(treasury), CAP * CHARGES, "treasury");
        assertEq(usd.allowance(payer, address(checkout)), 0, "allowance used up");
        vm.warp(m.validUntil);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__MandateExhausted.selector, _mandateDigest(m), CHARGES
            )
        );
        _charge(m, "", 999, 1);
    }

    // ================================================================ charge: windows

    function test_charge_opensEarlyWindowBeforeStart() public {
        // Arrange: the first period starts in a week
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.start = uint64(block.timestamp + 7 days);
        m.validUntil = m.start + 365 days;
        bytes memory signature = _signMandate(m);
        _approveMandate(m);

        // Act / Assert: one second before the early window, then at its opening
        vm.warp(m.start - EARLY - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__ChargeTooEarly.selector,
                _mandateDigest(m),
                m.start - EARLY,
                block.timestamp
            )
        );
        _charge(m, signature, 1, PRICE);

        vm.warp(m.start - EARLY);
        _charge(m, signature, 1, PRICE);
        assertEq(checkout.mandateState(_mandateDigest(m)).nextPeriod, 1, "period 0 charged");
    }

    function test_charge_revertsWhen_samePeriodChargedTwice() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);
        _charge(m, _signMandate(m), 1, PRICE);
        bytes32 id = _mandateDigest(m);

        // Still inside period 0, and up to the opening of period 1's early window
        vm.warp(m.start + MONTH - EARLY - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__ChargeTooEarly.selector, id, m.start + MONTH - EARLY, block.timestamp
            )
        );
        _charge(m, "", 2, PRICE);

        vm.warp(m.start + MONTH - EARLY);
        _charge(m, "", 2, PRICE);
        assertEq(checkout.mandateState(id).charges, 2);
    }

    function test_charge_windowsStayAnchoredToStartAfterLateCharge() public {
        // Arrange: period 0 charged in its last second (a retry late in the grace period)
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);
        bytes32 id = _mandateDigest(m);
        vm.warp(m.start + MONTH - EARLY - 1);
        _charge(m, _signMandate(m), 1, PRICE);

        // Act: period 1 is chargeable from its own window, not a month after the late charge
        vm.warp(m.start + MONTH - EARLY);
        vm.expectEmit(true, true, true, true, address(checkout));
        emit IRenewalMandates.MandateCharged(id, 2, 2, 1, PRICE);
        _charge(m, "", 2, PRICE);

        // Assert: period 2 opens at start + 2·MONTH − EARLY, whatever the charge times were
        vm.warp(m.start + 2 * uint256(MONTH) - EARLY - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__ChargeTooEarly.selector,
                id,
                m.start + 2 * uint256(MONTH) - EARLY,
                block.timestamp
            )
        );
        _charge(m, "", 3, PRICE);
    }

    function test_charge_skipsPeriodsWhoseWindowPassed() public {
        // Arrange: period 0 charged, period 1 missed (the member's balance was empty)
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);
        bytes32 id = _mandateDigest(m);
        _charge(m, _signMandate(m), 1, PRICE);

        // Act: a charge in period 2's window pays period 2, not period 1
        vm.warp(m.start + 2 * uint256(MONTH) + 1 days);
        vm.expectEmit(true, true, true, true, address(checkout));
        emit IRenewalMandates.MandateCharged(id, 2, 2, 2, PRICE);
        _charge(m, "", 2, PRICE);

        // Assert: period 1 can never be charged afterwards; period 2 not twice
        IRenewalMandates.MandateState memory state = checkout.mandateState(id);
        assertEq(state.charges, 2, "charges");
        assertEq(state.nextPeriod, 3, "next period");
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__ChargeTooEarly.selector,
                id,
                m.start + 3 * uint256(MONTH) - EARLY,
                block.timestamp
            )
        );
        _charge(m, "", 3, PRICE);
    }

    // ================================================================ charge: refusals

    function test_charge_revertsWhen_callerIsNotRenewer() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        _approveMandate(m);
        address[3] memory callers = [payer, owner, signer];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__NotRenewer.selector, callers[i])
            );
            vm.prank(callers[i]);
            checkout.charge(m, signature, 1, PRICE);
        }
    }

    function test_charge_revertsWhen_paused() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        _approveMandate(m);
        vm.prank(owner);
        checkout.pause();

        vm.expectRevert(Pausable.EnforcedPause.selector);
        _charge(m, signature, 1, PRICE);
    }

    function test_charge_revertsWhen_unregisteredAndNoSignature() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);

        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        _charge(m, "", 1, PRICE);
    }

    function test_charge_revertsWhen_anyFieldDiffersFromTheSignedMandate() public {
        // Arrange: registered as signed; the renewer then presents a mandate with a higher cap,
        // whose digest is another (unregistered, unsigned) mandate
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        _approveMandate(m);
        m.maxAmount = CAP * 10;

        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        _charge(m, "", 1, CAP * 10);
    }

    function test_charge_revertsWhen_amountAboveCap() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        _approveMandate(m);

        vm.expectRevert(
            abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__ChargeAboveCap.selector, CAP + 1, CAP)
        );
        _charge(m, signature, 1, CAP + 1);
    }

    function test_charge_revertsWhen_amountIsZero() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);

        vm.expectRevert(IRenewalMandates.SubscriptionCheckout__EmptyCharge.selector);
        _charge(m, signature, 1, 0);
    }

    function test_charge_revertsWhen_expired() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        _approveMandate(m);
        vm.warp(m.validUntil + 1);

        vm.expectRevert(
            abi.encodeWithSelector(
                IRenewalMandates.SubscriptionCheckout__MandateExpired.selector,
                _mandateDigest(m),
                m.validUntil,
                block.timestamp
            )
        );
        _charge(m, "", 1, PRICE);
    }

    function test_charge_succeedsAtValidUntil() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        _approveMandate(m);
        vm.warp(m.validUntil);

        _charge(m, "", 1, PRICE);

        assertEq(usd.balanceOf(treasury), PRICE);
    }

    function test_charge_revertsWhen_revoked() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        _approveMandate(m);
        vm.prank(payer);
        checkout.revokeMandate(m);

        vm.expectRevert(
            abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__MandateRevoked.selector, _mandateDigest(m))
        );
        _charge(m, "", 1, PRICE);
    }

    function test_charge_revertsWhen_orderAlreadyPaidByCheckout() public {
        // Arrange: order 5 paid through a quote; a charge may not reuse its id
        _approveAndPay(_quote(5));
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        _approveMandate(m);

        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__OrderAlreadyPaid.selector, 5)
        );
        _charge(m, signature, 5, PRICE);
        assertEq(checkout.mandateState(_mandateDigest(m)).charges, 0, "nothing recorded");
    }

    function test_charge_marksOrderSoQuotesCannotReuseIt() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _approveMandate(m);
        _charge(m, _signMandate(m), 5, PRICE);
        ISubscriptionCheckout.Quote memory q = _quote(5);
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);

        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__OrderAlreadyPaid.selector, 5)
        );
        vm.prank(payer);
        checkout.pay(q, signature);
    }

    function test_charge_revertsWhen_tokenTakesAFee() public {
        // Arrange
        FeeOnTransferToken feeToken = new FeeOnTransferToken(100); // 1 %
        feeToken.mint(payer, CAP);
        IRenewalMandates.RenewalMandate memory m = _mandate();
        m.token = address(feeToken);
        bytes memory signature = _signMandate(m);
        vm.prank(payer);
        feeToken.approve(address(checkout), CAP);

        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__AmountMismatch.selector, 1000, 990)
        );
        _charge(m, signature, 1, 1000);
    }

    function test_charge_revertsWhen_allowanceTooSmall() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        _approve(payer, PRICE - 1);

        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(checkout), PRICE - 1, PRICE
            )
        );
        _charge(m, signature, 1, PRICE);
    }

    // ================================================================ revoke

    function test_revokeMandate_emitsAndRecords() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes32 id = _register(m);

        vm.expectEmit(true, true, true, true, address(checkout));
        emit IRenewalMandates.MandateRevoked(id, payer);
        vm.prank(payer);
        checkout.revokeMandate(m);

        assertTrue(checkout.mandateState(id).revoked);
    }

    function test_revokeMandate_beforeRegistrationBlocksItForever() public {
        // Arrange: a leaked, never registered mandate
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        bytes32 id = _mandateDigest(m);
        _approveMandate(m);
        vm.prank(payer);
        checkout.revokeMandate(m);

        // Act / Assert: neither registration nor a first charge takes it
        vm.expectRevert(abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__MandateRevoked.selector, id));
        checkout.registerMandate(m, signature);
        vm.expectRevert(abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__MandateRevoked.selector, id));
        _charge(m, signature, 1, PRICE);
    }

    function test_revokeMandate_worksWhilePaused() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        vm.prank(owner);
        checkout.pause();

        vm.prank(payer);
        checkout.revokeMandate(m);

        assertTrue(checkout.mandateState(_mandateDigest(m)).revoked);
    }

    function test_revokeMandate_revertsWhen_callerIsNotPayer() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        address[3] memory callers = [renewer, owner, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__WrongPayer.selector, payer, callers[i])
            );
            vm.prank(callers[i]);
            checkout.revokeMandate(m);
        }
    }

    function test_revokeMandate_revertsWhen_alreadyRevoked() public {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        vm.startPrank(payer);
        checkout.revokeMandate(m);

        vm.expectRevert(
            abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__MandateRevoked.selector, _mandateDigest(m))
        );
        checkout.revokeMandate(m);
        vm.stopPrank();
    }

    function test_revokeMandate_leavesOtherMandatesOfThePayer() public {
        // A new mandate (another salt) after a revoke is a different mandate
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        vm.prank(payer);
        checkout.revokeMandate(m);
        m.salt = 2;
        _approveMandate(m);

        _charge(m, _signMandate(m), 1, PRICE);

        assertEq(usd.balanceOf(treasury), PRICE);
    }

    // ================================================================ renewer

    function test_setRenewer_emitsAndRotates() public {
        address next = makeAddr("next renewer");
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);
        _approveMandate(m);

        vm.expectEmit(true, true, true, true, address(checkout));
        emit IRenewalMandates.RenewerChanged(renewer, next);
        vm.prank(owner);
        checkout.setRenewer(next);

        assertEq(checkout.renewer(), next);
        vm.expectRevert(abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__NotRenewer.selector, renewer));
        _charge(m, signature, 1, PRICE);
        vm.prank(next);
        checkout.charge(m, signature, 1, PRICE);
    }

    function test_setRenewer_zeroStopsCharges() public {
        vm.prank(owner);
        checkout.setRenewer(address(0));
        IRenewalMandates.RenewalMandate memory m = _mandate();
        bytes memory signature = _signMandate(m);

        vm.expectRevert(abi.encodeWithSelector(IRenewalMandates.SubscriptionCheckout__NotRenewer.selector, renewer));
        _charge(m, signature, 1, PRICE);
    }

    function test_setRenewer_revertsWhen_callerIsNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, renewer));
        vm.prank(renewer);
        checkout.setRenewer(stranger);
    }

    function test_renewer_isZeroAtDeployment() public {
        assertEq(new SubscriptionCheckout(owner, signer, treasury).renewer(), address(0));
    }

    // ================================================================ digest

    function test_mandateDigest_matchesEip712() public view {
        IRenewalMandates.RenewalMandate memory m = _mandate();
        assertEq(checkout.mandateDigest(m), _mandateDigest(m));
        assertEq(checkout.MANDATE_TYPEHASH(), MANDATE_TYPEHASH);
    }
}

