// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ISubscriptionCheckout} from "./interfaces/ISubscriptionCheckout.sol";
import {IRenewalMandates} from "./interfaces/IRenewalMandates.sol";

/// @title SubscriptionCheckout
/// @notice Takes subscription payments in ERC-20 tokens against quotes signed by the
/// tmai-pay service, and renewals under mandates signed by members (see {IRenewalMandates}),
/// and emits {OrderPaid} for the service's watcher for both.
///
/// @dev Invariants:
/// - An order id is paid at most once (the `_paidOrders` bit is set before any token moves).
/// - A payment moves exactly `quote.amount` from the payer to the treasury, measured on the
///   treasury's balance; anything else reverts.
/// - Only the payer named in the quote can pay it, before its deadline, and only while the
///   signature recovers to the current quote signer.
/// - A mandate is charged only by the renewer, only after its payer's signature was checked
///   once, never after its payer revoked it or after `validUntil`, at most `maxCharges` times,
///   at most `maxAmount` each time, and at most once per billing period `k`, inside
///   `[start + k·period − earlyWindow, start + (k+1)·period)`. So by any time t, a mandate
///   has taken at most `maxAmount × min(maxCharges, ⌊(t − start + earlyWindow) / period⌋ + 1)`;
///   two charges can be close only across a window boundary (a late retry of period k, then
///   period k+1 on time), never two in one window. A charge is an order like a quote's: its
///   id is marked paid in the same bitmap and it emits the same {OrderPaid}.
/// - The checkout always has an owner: {renounceOwnership} reverts, and ownership moves only
///   by the two-step transfer (an ownerless checkout could never unpause, rotate a leaked
///   signer key or change the treasury again).
///
/// Storage layout (inheritance order Ownable, Ownable2Step, EIP712, Pausable, this):
/// - slot 0: Ownable `_owner`                           (read only by owner functions)
/// - slot 1: Ownable2Step `_pendingOwner`
/// - slots 2-3: EIP712 name/version fallbacks (unused: both fit in short strings)
/// - slot 4: Pausable `_paused` (1 byte) packed with `_quoteSigner` (20 bytes), so `pay`
///   reads the pause flag and the signer with one cold SLOAD.
/// - slot 5: `_treasury`.
/// - slot 6 `_paidOrders`: a bitmap of paid order ids, 256 per word (as Permit2's unordered
///   nonces). Order ids are sequential, so consecutive payments mostly flip a bit in a word
///   that is already non-zero (5,000 gas instead of 20,000).
/// - slot 7: `_renewer` (appended after the checkout's original slots).
/// - slot 8 `_mandates`: one word per mandate id, {MandateState} packed (registered, revoked,
///   charges, next period: 14 bytes). The mandate's fields are not stored: every charge passes
///   the mandate in calldata and its digest selects the word, so a charge reads one slot
///   instead of five, and registration writes one.
contract SubscriptionCheckout is ISubscriptionCheckout, IRenewalMandates, Ownable2Step, EIP712, Pausable {
    using SafeERC20 for IERC20;

    /// @notice The EIP-712 type hash of {Quote}.
    bytes32 public constant QUOTE_TYPEHASH = keccak256(
        "Quote(uint256 orderId,address payer,address token,uint256 amount,uint32 planId,uint32 periods,uint64 deadline)"
    );

    /// @notice The EIP-712 type hash of {RenewalMandate}.
    bytes32 public constant MANDATE_TYPEHASH = keccak256(
        "RenewalMandate(address payer,address token,uint256 maxAmount,uint32 period,uint32 maxCharges,uint64 start,uint64 validUntil,uint32 earlyWindow,uint32 planId,uint256 salt)"
    );

    address private _quoteSigner;
    address private _treasury;
    mapping(uint256 wordIndex => uint256 bits) private _paidOrders;
    address private _renewer;
    mapping(bytes32 mandateId => MandateState) private _mandates;

    /// @param initialOwner Account that may rotate the signer and treasury and pause.
    /// @param initialSigner Account whose signatures make quotes valid (the service's key).
    /// @param initialTreasury Account that receives every payment.
    constructor(address initialOwner, address initialSigner, address initialTreasury)
        Ownable(initialOwner)
        EIP712("TMAI Checkout", "1")
    {
        if (initialSigner == address(0) || initialTreasury == address(0)) {
            revert SubscriptionCheckout__ZeroAddress();
        }
        _quoteSigner = initialSigner;
        _treasury = initialTreasury;
        emit QuoteSignerChanged(address(0), initialSigner);
        emit TreasuryChanged(address(0), initialTreasury);
    }

    /// @inheritdoc ISubscriptionCheckout
    /// @dev Requirements: not paused; `msg.sender` is `quote.payer`; the deadline has not
    /// passed; the signature is the quote signer's; the order is unpaid; this contract may
    /// spend `quote.amount` of the payer's tokens; the token delivers exactly that amount.
    ///
    /// Emits an {OrderPaid} event.
    function pay(Quote calldata quote, bytes calldata signature) external whenNotPaused {
        _settle(quote, signature);
    }

    /// @inheritdoc ISubscriptionCheckout
    /// @dev Requirements: as {pay}, with the permit standing in for the approval.
    ///
    /// Emits an {OrderPaid} event.
    function payWithPermit(
        Quote calldata quote,
        bytes calldata signature,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external whenNotPaused {
        // A front-run permit has already set the allowance; the transfer decides.
        try IERC20Permit(quote.token).permit(msg.sender, address(this), quote.amount, permitDeadline, v, r, s) {}
            catch {}
        _settle(quote, signature);
    }

    /// @notice Rotates the quote signer; quotes signed by the old key stop being valid.
    /// @dev Requirements: caller is the owner; `newSigner` is not zero. Emits {QuoteSignerChanged}.
    function setQuoteSigner(address newSigner) external onlyOwner {
        if (newSigner == address(0)) revert SubscriptionCheckout__ZeroAddress();
        emit QuoteSignerChanged(_quoteSigner, newSigner);
        _quoteSigner = newSigner;
    }

    /// @notice Changes the account that receives payments.
    /// @dev Requirements: caller is the owner; `newTreasury` is not zero. Emits {TreasuryChanged}.
    function setTreasury(address newTreasury) external onlyOwner {
        if (newTreasury == address(0)) revert SubscriptionCheckout__ZeroAddress();
        emit TreasuryChanged(_treasury, newTreasury);
        _treasury = newTreasury;
    }

    /// @inheritdoc IRenewalMandates
    /// @dev Requirements: not paused; the mandate's fields are in range; it is neither
    /// registered nor revoked; `validUntil` has not passed; the signature is the payer's.
    ///
    /// Emits a {MandateRegistered} event.
    function registerMandate(RenewalMandate calldata mandate, bytes calldata signature)
        external
        whenNotPaused
        returns (bytes32 mandateId)
    {
        mandateId = mandateDigest(mandate);
        MandateState memory state = _mandates[mandateId];
        if (state.registered) revert SubscriptionCheckout__MandateAlreadyRegistered(mandateId);
        _register(mandate, signature, mandateId, state);
    }

    /// @inheritdoc IRenewalMandates
    /// @dev Requirements: caller is the renewer; not paused; the mandate is registered or
    /// `signature` registers it (as {registerMandate}); not revoked; `validUntil` has not
    /// passed; fewer than `maxCharges` charges so far; `0 < amount <= maxAmount`; the window
    /// of a billing period after the last charged one is open; the order is unpaid; the payer
    /// allowed and holds `amount`; the token delivers exactly that amount.
    ///
    /// Emits {MandateRegistered} (first charge only), {OrderPaid} and {MandateCharged}.
    function charge(RenewalMandate calldata mandate, bytes calldata signature, uint256 orderId, uint256 amount)
        external
        whenNotPaused
    {
        if (msg.sender != _renewer) revert SubscriptionCheckout__NotRenewer(msg.sender);
        bytes32 mandateId = mandateDigest(mandate);
        MandateState memory state = _mandates[mandateId];
        if (!state.registered) _register(mandate, signature, mandateId, state);
        if (state.revoked) revert SubscriptionCheckout__MandateRevoked(mandateId);
        if (block.timestamp > mandate.validUntil) {
            revert SubscriptionCheckout__MandateExpired(mandateId, mandate.validUntil, block.timestamp);
        }
        if (state.charges >= mandate.maxCharges) {
            revert SubscriptionCheckout__MandateExhausted(mandateId, mandate.maxCharges);
        }
        if (amount == 0) revert SubscriptionCheckout__EmptyCharge();
        if (amount > mandate.maxAmount) revert SubscriptionCheckout__ChargeAboveCap(amount, mandate.maxAmount);

        // Windows are computed from `start`, never from the last charge, so a late charge does
        // not push the next one later (no drift). Period k's window opens at
        // start + k·period − earlyWindow; adding earlyWindow on the left keeps it unsigned.
        // No overflow: every term is below 2^64·2^32.
        uint256 shifted = block.timestamp + mandate.earlyWindow;
        uint256 opensAt = uint256(mandate.start) + uint256(state.nextPeriod) * mandate.period;
        if (shifted < opensAt) {
            uint256 early = mandate.earlyWindow;
            revert SubscriptionCheckout__ChargeTooEarly(mandateId, opensAt > early ? opensAt - early : 0, block.timestamp);
        }
        // The period whose window holds now (the windows tile time, as earlyWindow < period).
        // Periods whose windows passed uncharged are skipped, never charged later: the member
        // was not served then. Below 2^64 as block.timestamp is; SafeCast guards the last one.
        uint256 chargedPeriod = (shifted - mandate.start) / mandate.period;

        state.charges += 1;
        state.nextPeriod = SafeCast.toUint64(chargedPeriod + 1);
        _mandates[mandateId] = state;
        _markPaid(orderId);
        _collect(IERC20(mandate.token), mandate.payer, amount);
        emit OrderPaid(orderId, mandate.payer, mandate.planId, mandate.token, amount, 1);
        emit MandateCharged(mandateId, orderId, state.charges, uint64(chargedPeriod), amount);
    }

    /// @inheritdoc IRenewalMandates
    /// @dev Requirements: caller is `mandate.payer`; not revoked already. Works while paused,
    /// and for a mandate never registered (which then can never be).
    ///
    /// Emits a {MandateRevoked} event.
    function revokeMandate(RenewalMandate calldata mandate) external {
        if (msg.sender != mandate.payer) revert SubscriptionCheckout__WrongPayer(mandate.payer, msg.sender);
        bytes32 mandateId = mandateDigest(mandate);
        MandateState storage state = _mandates[mandateId];
        if (state.revoked) revert SubscriptionCheckout__MandateRevoked(mandateId);
        state.revoked = true;
        emit MandateRevoked(mandateId, msg.sender);
    }

    /// @inheritdoc IRenewalMandates
    /// @dev Requirements: caller is the owner. Zero is allowed: it stops every charge while
    /// checkouts go on. Emits {RenewerChanged}.
    function setRenewer(address newRenewer) external onlyOwner {
        emit RenewerChanged(_renewer, newRenewer);
        _renewer = newRenewer;
    }

    /// @notice Stops all payments. @dev Requirements: caller is the owner; not paused.
    function pause() external onlyOwner {
        _pause();
    }

    /// @notice Resumes payments. @dev Requirements: caller is the owner; paused.
    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Always reverts: the checkout must keep an owner. Hand it over with
    /// {transferOwnership} and {acceptOwnership} instead.
    /// @dev Reverts with OpenZeppelin's `OwnableUnauthorizedAccount` for a caller that is not
    /// the owner (as every owner function does), and with
    /// {SubscriptionCheckout__RenounceOwnershipDisabled} for the owner.
    function renounceOwnership() public view override onlyOwner {
        revert SubscriptionCheckout__RenounceOwnershipDisabled();
    }

    /// @inheritdoc ISubscriptionCheckout
    function isOrderPaid(uint256 orderId) external view returns (bool) {
        return _paidOrders[orderId >> 8] & (1 << (orderId & 0xff)) != 0;
    }

    /// @inheritdoc ISubscriptionCheckout
    function quoteDigest(Quote calldata quote) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(QUOTE_TYPEHASH, quote)));
    }

    /// @inheritdoc ISubscriptionCheckout
    function quoteSigner() external view returns (address) {
        return _quoteSigner;
    }

    /// @inheritdoc ISubscriptionCheckout
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IRenewalMandates
    function renewer() external view returns (address) {
        return _renewer;
    }

    /// @inheritdoc IRenewalMandates
    function mandateDigest(RenewalMandate calldata mandate) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(MANDATE_TYPEHASH, mandate)));
    }

    /// @inheritdoc IRenewalMandates
    function mandateState(bytes32 mandateId) external view returns (MandateState memory) {
        return _mandates[mandateId];
    }

    /// @dev Checks a not yet registered mandate's fields and its payer's signature, stores it
    /// as registered and sets `state.registered` for the caller.
    function _register(
        RenewalMandate calldata mandate,
        bytes calldata signature,
        bytes32 mandateId,
        MandateState memory state
    ) private {
        if (state.revoked) revert SubscriptionCheckout__MandateRevoked(mandateId);
        if (
            mandate.payer == address(0) || mandate.token == address(0) || mandate.maxAmount == 0
                || mandate.maxCharges == 0 || mandate.earlyWindow >= mandate.period
        ) revert SubscriptionCheckout__InvalidMandate();
        if (block.timestamp > mandate.validUntil) {
            revert SubscriptionCheckout__MandateExpired(mandateId, mandate.validUntil, block.timestamp);
        }
        // ECDSA (OpenZeppelin refuses high-s and malformed signatures) for an account without
        // code, ERC-1271 for a contract wallet. The id is the digest, not the signature, so a
        // second valid signature of the same mandate finds it registered already.
        if (!SignatureChecker.isValidSignatureNow(mandate.payer, mandateId, signature)) {
            revert SubscriptionCheckout__InvalidSignature();
        }
        state.registered = true;
        _mandates[mandateId] = state;
        emit MandateRegistered(mandateId, mandate.payer, mandate.planId, mandate);
    }

    /// @dev Checks the quote, marks the order paid, moves the tokens and emits {OrderPaid}.
    function _settle(Quote calldata quote, bytes calldata signature) private {
        if (msg.sender != quote.payer) revert SubscriptionCheckout__WrongPayer(quote.payer, msg.sender);
        if (block.timestamp > quote.deadline) {
            revert SubscriptionCheckout__QuoteExpired(quote.deadline, block.timestamp);
        }
        if (quote.amount == 0 || quote.periods == 0) revert SubscriptionCheckout__EmptyQuote();
        if (signature.length != 65) revert SubscriptionCheckout__InvalidSignature();
        // Split the signature in calldata rather than copying it to memory.
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(
            quoteDigest(quote), uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64])
        );
        if (err != ECDSA.RecoverError.NoError || signer != _quoteSigner) {
            revert SubscriptionCheckout__InvalidSignature();
        }
        _markPaid(quote.orderId);
        _collect(IERC20(quote.token), msg.sender, quote.amount);
        emit OrderPaid(quote.orderId, msg.sender, quote.planId, quote.token, quote.amount, quote.periods);
    }

    /// @dev Sets the order's bit, reverting when it was set already.
    function _markPaid(uint256 orderId) private {
        uint256 word = _paidOrders[orderId >> 8];
        uint256 bit = 1 << (orderId & 0xff);
        if (word & bit != 0) revert SubscriptionCheckout__OrderAlreadyPaid(orderId);
        _paidOrders[orderId >> 8] = word | bit;
    }

    /// @dev Moves `amount` from `from` to the treasury and checks that the treasury received
    /// exactly that much.
    function _collect(IERC20 token, address from, uint256 amount) private {
        address to = _treasury;
        uint256 before = token.balanceOf(to);
        token.safeTransferFrom(from, to, amount);
        uint256 received = token.balanceOf(to);
        received = received < before ? 0 : received - before;
        if (received != amount) revert SubscriptionCheckout__AmountMismatch(amount, received);
    }
}
