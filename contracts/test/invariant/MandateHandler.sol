// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SubscriptionCheckout} from "../../src/SubscriptionCheckout.sol";
import {IRenewalMandates} from "../../src/interfaces/IRenewalMandates.sol";
import {TestToken} from "../../devnet/TestToken.sol";
import {Test} from "../utils/Test.sol";

/// @title MandateHandler
/// @notice Drives renewal mandates for the invariant fuzzer: payers sign mandates with random
/// caps, periods, early windows, counts, starts and expiries (some registered at once, the
/// rest with their first charge); the renewer charges random amounts (sometimes above the
/// cap) at random times, or when a mandate's next window opens (as the service does, so
/// that most runs charge mandates several times); strangers try to charge; payers revoke;
/// time passes.
/// @dev Each payer is minted and approves exactly cap × charges per mandate it signs, so
/// every token is accounted for. Ghost state records every successful charge: per mandate
/// and billing period the amount and the number of charges, and how many charges broke a
/// bound (above the cap, after a revoke, after `validUntil`, outside their window, beyond
/// `maxCharges`). The invariants require those counts to stay zero. Independently, every
/// call's outcome is predicted from a model of the rules, and a mismatch either way (a
/// wrongful refusal too) is recorded in {violations}, because the invariant fuzzer ignores
/// handler reverts.
contract MandateHandler is Test {
    SubscriptionCheckout public immutable checkout;
    address public immutable renewer;
    TestToken public immutable token;

    address[] private _payers;
    uint256[] private _payerKeys;

    IRenewalMandates.RenewalMandate[] private _mandates;
    bytes[] private _signatures;

    // ------------------------------------------------------------ ghost state
    uint256 public currentTime;
    uint256 public nextOrderId = 1;
    mapping(uint256 index => bool) public registered;
    mapping(uint256 index => bool) public revoked;
    mapping(uint256 index => uint256) public chargesOf;
    mapping(uint256 index => uint256) public nextPeriodOf;
    mapping(uint256 index => mapping(uint256 period => uint256)) public chargedInPeriod;
    mapping(uint256 index => mapping(uint256 period => uint256)) public chargesInPeriod;
    uint256 public chargedSum;
    uint256 public successfulCharges;

    // Charges that broke a bound; the invariants require zero.
    uint256 public aboveCap;
    uint256 public afterRevoke;
    uint256 public afterExpiry;
    uint256 public outsideWindow;
    uint256 public beyondCount;

    // ------------------------------------------------------------ outcome bookkeeping
    uint256 public violations;
    string public lastViolation;

    constructor(SubscriptionCheckout checkout_, address renewer_, uint256 payerCount) {
        checkout = checkout_;
        renewer = renewer_;
        token = new TestToken("Test USD", "tUSD", 6, address(this));
        for (uint256 i; i < payerCount; ++i) {
            (address payer, uint256 key) = makeAddrAndKey(string.concat("mandate payer ", vm.toString(i)));
            _payers.push(payer);
            _payerKeys.push(key);
        }
        currentTime = block.timestamp;
    }

    /// @dev Block time does not carry over between fuzzer calls; replay the handler's clock.
    modifier useCurrentTime() {
        vm.warp(currentTime);
        _;
    }

    // ================================================================ actions

    /// @dev A payer signs a new mandate, funds and approves exactly cap × charges; half of the
    /// mandates are registered at once (by anyone), the rest by their first charge.
    function sign(
        uint256 payerSeed,
        uint256 cap,
        uint32 period,
        uint32 earlyWindow,
        uint32 maxCharges,
        uint32 startDelay,
        uint64 validFor,
        bool registerNow
    ) external useCurrentTime {
        uint256 p = payerSeed % _payers.length;
        IRenewalMandates.RenewalMandate memory m;
        m.payer = _payers[p];
        m.token = address(token);
        m.maxAmount = bound(cap, 1, 1e24);
        m.period = uint32(bound(period, 7 days, 31 days));
        m.earlyWindow = uint32(bound(earlyWindow, 0, m.period - 1));
        m.maxCharges = uint32(bound(maxCharges, 1, 12));
        m.start = uint64(currentTime + bound(startDelay, 0, 3 days));
        m.validUntil = m.start + uint64(bound(validFor, uint256(m.maxCharges) * m.period / 2, uint256(m.maxCharges + 1) * m.period));
        m.planId = uint32(_mandates.length % 4);
        m.salt = _mandates.length;
        bytes memory signature = _sign(m, _payerKeys[p]);

        uint256 total = m.maxAmount * m.maxCharges;
        token.mint(m.payer, total);
        vm.startPrank(m.payer);
        token.approve(address(checkout), token.allowance(m.payer, address(checkout)) + total);
        vm.stopPrank();

        uint256 index = _mandates.length;
        _mandates.push(m);
        _signatures.push(signature);
        if (registerNow) {
            try checkout.registerMandate(m, signature) {
                registered[index] = true;
            } catch (bytes memory reason) {
                // Registration refuses only an already expired mandate.
                if (currentTime <= m.validUntil) _violate("registerMandate: valid mandate refused", reason);
            }
        }
    }

    /// @dev The renewer charges a mandate `amount` now: within the cap three times in four,
    /// above it (up to twice the cap) otherwise.
    function charge(uint256 indexSeed, uint256 amount, bool withSignature) external useCurrentTime {
        if (_mandates.length == 0) return;
        _charge(indexSeed % _mandates.length, amount, withSignature);
    }

    /// @dev As the service's renewer does: waits until a mandate's next window is open (a
    /// random time into it, possibly past its end or past `validUntil`), then charges.
    function chargeWhenDue(uint256 indexSeed, uint256 amount, uint256 delay) external {
        if (_mandates.length == 0) return;
        uint256 index = indexSeed % _mandates.length;
        IRenewalMandates.RenewalMandate memory m = _mandates[index];
        uint256 opensAt = uint256(m.start) + nextPeriodOf[index] * m.period;
        opensAt = opensAt > m.earlyWindow ? opensAt - m.earlyWindow : 0;
        if (opensAt > currentTime) currentTime = opensAt;
        // Mostly early in the window; one call in four anywhere up to past its end.
        currentTime += delay % 4 == 0 ? bound(delay, 0, m.period + m.earlyWindow) : bound(delay, 0, 2 days);
        vm.warp(currentTime);
        _charge(index, amount, false);
    }

    function _charge(uint256 index, uint256 amount, bool withSignature) private {
        IRenewalMandates.RenewalMandate memory m = _mandates[index];
        amount = amount % 4 == 0 ? bound(amount, m.maxAmount + 1, 2 * m.maxAmount) : bound(amount, 1, m.maxAmount);
        bool sendSignature = withSignature || !registered[index];
        bool predicted = _allowed(index, m, amount, sendSignature);

        vm.prank(renewer);
        try checkout.charge(m, sendSignature ? _signatures[index] : bytes(""), nextOrderId++, amount) {
            if (!predicted) _violate("charge: succeeded where the rules refuse");
            _recordCharge(index, m, amount);
        } catch (bytes memory reason) {
            if (predicted) _violate("charge: refused where the rules allow", reason);
        }
    }

    /// @dev Anyone but the renewer tries to charge; it must fail.
    function chargeAsStranger(uint256 indexSeed, uint256 callerSeed) external useCurrentTime {
        if (_mandates.length == 0) return;
        uint256 index = indexSeed % _mandates.length;
        IRenewalMandates.RenewalMandate memory m = _mandates[index];
        address caller = callerSeed % 2 == 0 ? m.payer : address(uint160(callerSeed | 1));
        if (caller == renewer) return;

        vm.prank(caller);
        try checkout.charge(m, _signatures[index], nextOrderId++, 1) {
            _violate("charge: a stranger charged");
            _recordCharge(index, m, 1);
        } catch {}
    }

    /// @dev The payer revokes one of its mandates (registered or not), one call in three, so
    /// that most mandates live long enough to be charged several times.
    function revoke(uint256 indexSeed) external useCurrentTime {
        if (_mandates.length == 0 || indexSeed % 3 != 0) return;
        uint256 index = indexSeed % _mandates.length;
        IRenewalMandates.RenewalMandate memory m = _mandates[index];

        vm.prank(m.payer);
        try checkout.revokeMandate(m) {
            if (revoked[index]) _violate("revokeMandate: revoked twice");
            revoked[index] = true;
        } catch (bytes memory reason) {
            if (!revoked[index]) _violate("revokeMandate: payer refused", reason);
        }
    }

    function warp(uint256 secondsSeed) external {
        currentTime += bound(secondsSeed, 0, 5 days);
    }

    // ================================================================ views for the invariants

    function mandateCount() external view returns (uint256) {
        return _mandates.length;
    }

    function mandate(uint256 index) external view returns (IRenewalMandates.RenewalMandate memory) {
        return _mandates[index];
    }

    function payers() external view returns (address[] memory) {
        return _payers;
    }

    // ================================================================ internals

    /// @dev The rules, restated: whether a charge of `amount` now must succeed.
    function _allowed(uint256 index, IRenewalMandates.RenewalMandate memory m, uint256 amount, bool sendSignature)
        private
        view
        returns (bool)
    {
        if (revoked[index]) return false;
        if (!registered[index] && !sendSignature) return false;
        if (currentTime > m.validUntil) return false;
        if (chargesOf[index] >= m.maxCharges) return false;
        if (amount > m.maxAmount) return false;
        return currentTime + m.earlyWindow >= uint256(m.start) + nextPeriodOf[index] * m.period;
    }

    /// @dev Records a successful charge and counts every bound it broke.
    function _recordCharge(uint256 index, IRenewalMandates.RenewalMandate memory m, uint256 amount) private {
        registered[index] = true;
        if (amount > m.maxAmount) ++aboveCap;
        if (revoked[index]) ++afterRevoke;
        if (currentTime > m.validUntil) ++afterExpiry;
        if (chargesOf[index] >= m.maxCharges) ++beyondCount;
        if (currentTime + m.earlyWindow < m.start) {
            ++outsideWindow;
            return;
        }
        uint256 period = (currentTime + m.earlyWindow - m.start) / m.period;
        if (period < nextPeriodOf[index]) ++outsideWindow;
        chargedInPeriod[index][period] += amount;
        ++chargesInPeriod[index][period];
        ++chargesOf[index];
        nextPeriodOf[index] = period + 1;
        chargedSum += amount;
        ++successfulCharges;
    }

    function _sign(IRenewalMandates.RenewalMandate memory m, uint256 key) private view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, checkout.mandateDigest(m));
        return abi.encodePacked(r, s, v);
    }

    function _violate(string memory what) private {
        ++violations;
        lastViolation = what;
    }

    function _violate(string memory what, bytes memory reason) private {
        _violate(string.concat(what, " with ", vm.toString(reason)));
    }
}
