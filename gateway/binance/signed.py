"""The signed Binance routes (orders, account, positions), run through the server's sequencer.

Each request is checked (auth.py: key, signature, window, replay), its parameters turned into a
native request in the venue's integers (exactly: units.py), and run by ``Source.call`` in the
sequencer's next batch, under the native protocol's checks and limits, with the account of the
key. Its answer comes back once the batch is on disk and is written in Binance's shape; the
orders' full state (average price, filled quote, status after they leave the book) comes
from the recorded history (orders.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from multidict import MultiDict

from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.binance.auth import Signer
from gaemi.gateway.binance.errors import BinanceError, from_native, json_response, missing
from gaemi.gateway.binance.orders import LIQUIDATION_ID, SYNTHETIC_ID, OrderRecord, side_name
from gaemi.gateway.binance.units import (
    OffGrid,
    average_text,
    decimal_text,
    lots_text,
    price_text,
    to_lots,
    to_ticks,
    usd_text,
)
from gaemi.risk.markets import PPB, UNIT, MarketSpec
from gaemi.risk.venue import DEFAULT_LEVERAGE

__all__ = ["SignedRoutes"]

_SIGNING = ("timestamp", "recvWindow", "signature")
_TYPES = ("LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")
_TIFS = ("GTC", "IOC", "FOK", "GTX")
_CONDITIONAL = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")
MAX_BODY = 16 * 1024
MAX_BATCH = 5  # orders in one batchOrders request (Binance's limit)
MAX_CANCELS = 10  # orders in one DELETE batchOrders request (Binance's limit)


class SignedRoutes:
    """Bound to the facade (rest.py ``_Facade``): its venue, symbols, params and clock."""

    def __init__(self, facade: Any) -> None:
        self.f = facade
        self.signer = Signer(facade.source.keys)

    # -- the request ------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> tuple[int, Any]:
        """The account of a correctly signed request and its parameters (query and form
        body), the signing ones already read."""
        body = ""
        if request.method != "GET" and request.can_read_body:
            if (request.content_length or 0) > MAX_BODY:
                raise BinanceError(-1100, "The request body is too large.")
            raw = await request.read()  # all of it (the app caps it at client_max_size)
            if len(raw) > MAX_BODY:
                raise BinanceError(-1100, "The request body is too large.")
            try:
                body = raw.decode("ascii")
            except UnicodeDecodeError:
                raise BinanceError(-1100, "Illegal characters found in the body.") from None
        query = request.rel_url.raw_query_string
        pairs: MultiDict[str] = MultiDict(request.query)
        try:
            pairs.extend(parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)))
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in the body.") from None
        flat = {k: v for k, v in pairs.items()}
        for name in _SIGNING:
            if len(pairs.getall(name, [])) > 1:
                raise BinanceError(-1101, f"Duplicate values for parameter '{name}'.")
        key = self.signer.verify(request.headers.get("X-MBX-APIKEY"), query, body, flat,
                                 self.f.now_ms(), once=request.method != "GET")
        params = self.f.params_of(pairs)
        for name in _SIGNING:
            params.read.add(name)
        return key.account_id, params

    async def _call(self, account: int, op: str, args: dict[str, Any] | None = None, *,
                    unknown_account: Any = None, prepare: Any = None) -> Any:
        """The native result; a native error as Binance's (``unknown_account``: the result
        for an account that never deposited, instead of an error; ``prepare``: see
        ``Server.call``)."""
        response = await self.f.source.call(account, op, args, prepare=prepare)
        if not response["ok"]:
            error = response["error"]
            if error["code"] == R.UNKNOWN_ACCOUNT and unknown_account is not None:
                return unknown_account
            raise from_native(error["code"], error["msg"])
        return response["result"]

    # -- orders -----------------------------------------------------------------------------

    async def new_order(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol, args = self._order_args(p, algo=False)
        result = await self._call(account, "order.place", args)
        return json_response(self._order(account, result["orderId"], symbol))

    async def batch_orders(self, request: web.Request) -> web.Response:
        """Up to 5 orders, each placed (or refused) on its own, as Binance does: the answer
        lists each order, or its error, in the order sent. They run in one sequencer batch."""
        account, p = await self._params(request)
        text = p.need("batchOrders")
        p.done()
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise BinanceError(-1130, "Data sent for parameter 'batchOrders' is not valid: "
                               "not JSON.") from None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise BinanceError(-1130, f"Data sent for parameter 'batchOrders' is not valid: "
                               f"a list of 1 to {MAX_BATCH} orders.")
        placed: list[tuple[str, Any] | BinanceError] = []
        for item in items:
            try:
                placed.append(self._order_args(self.f.params_of(_batch_item(item)),
                                               algo=False))
            except BinanceError as exc:
                placed.append(exc)
        return json_response(await self._each(
            account, placed, "order.place", lambda x: x[1],
            lambda x, result: self._order(account, result["orderId"], x[0])))

    async def cancel_batch(self, request: web.Request) -> web.Response:
        """Up to 10 orders of one symbol, by ``orderIdList`` or ``origClientOrderIdList``
        (JSON lists; also read under the lower-case names ccxt sends), each cancelled (or
        refused) on its own: the answer lists each order or its error, in the order sent."""
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        ids = _one_of(p, "orderIdList", "orderidlist")
        cids = _one_of(p, "origClientOrderIdList", "origclientorderidlist")
        p.done()
        if ids is not None and cids is not None:
            raise BinanceError(-1128, "Send one of 'orderIdList' and 'origClientOrderIdList', "
                               "not both.")
        sent = ids or cids
        if sent is None:
            raise missing("orderIdList")
        wanted = _id_list(*sent, int if ids else str)
        records: list[OrderRecord | BinanceError] = []
        for x in wanted:
            record = self.f.tape.orders.get(account, x, None) if ids else \
                self.f.tape.orders.get(account, None, x)
            if record is None or record.symbol != symbol or record.done:
                records.append(BinanceError(-2011, "Unknown order sent."))
            else:
                records.append(record)
        return json_response(await self._each(
            account, records, "order.cancel",
            lambda r: {"symbol": symbol, "orderId": r.order_id},
            lambda r, _: self._order_json(r)))

    async def _each(self, account: int, items: list[Any], op: str,
                    args_of: Callable[[Any], dict[str, Any]],
                    answer_of: Callable[[Any, Any], Any]) -> list[Any]:
        """A batch's items, each an error already or a native ``op`` (queued at once, run
        one after the other in the account's turn): each answer or ``{code, msg}``, in the
        order sent."""
        pending = [self._call(account, op, args_of(x)) for x in items
                   if not isinstance(x, BinanceError)]
        results = iter(await asyncio.gather(*pending, return_exceptions=True))
        out: list[Any] = []
        for x in items:
            result = x if isinstance(x, BinanceError) else next(results)
            if isinstance(result, BinanceError):
                out.append({"code": result.code, "msg": result.msg})
            elif isinstance(result, BaseException):
                raise result
            else:
                out.append(answer_of(x, result))
        return out

    async def new_algo_order(self, request: web.Request) -> web.Response:
        """Binance's conditional ("algo") orders, as ccxt 4.5 sends stop and take-profit
        orders: the venue's conditional orders, triggered by the mark."""
        account, p = await self._params(request)
        symbol, args = self._order_args(p, algo=True)
        result = await self._call(account, "order.place", args)
        record = self.f.tape.orders.get(account, result["orderId"], None)
        if record is None:
            raise BinanceError(-1000, "The order was placed but its record is missing.", 500)
        return json_response(self._algo_json(record))

    def _order_args(self, p: Any, *, algo: bool) -> tuple[str, dict[str, Any]]:
        """The native ``order.place`` arguments of a Binance order (``algo``: of an algo
        order, whose trigger is ``triggerPrice`` and client id ``clientAlgoId``)."""
        if algo and p.need("algoType") != "CONDITIONAL":
            raise BinanceError(-1116, "Invalid algoType: CONDITIONAL only.")
        symbol = self.f.market(p.need("symbol"))
        spec = self.f.venue().spec(symbol)
        side = p.need("side")
        kind = p.need("type")
        tif = p.get("timeInForce")
        qty_text = p.need("quantity")
        price_text_ = p.get("price")
        stop_text = p.get("triggerPrice" if algo else "stopPrice")
        reduce_text = p.get("reduceOnly")
        cid = p.get("clientAlgoId" if algo else "newClientOrderId")
        position_side = p.get("positionSide")
        working = p.get("workingType")
        close_position = p.get("closePosition")
        for ignored in ("newOrderRespType", "priceProtect"):
            p.get(ignored)
        p.done()
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        if kind not in (_CONDITIONAL if algo else _TYPES):
            raise BinanceError(-1116, "Invalid orderType.")
        if tif is not None and tif not in _TIFS:
            raise BinanceError(-1115, "Invalid timeInForce.")
        if position_side not in (None, "BOTH"):
            raise BinanceError(-4061, "Order's position side does not match user's setting "
                               "(one-way mode: positionSide BOTH).")
        if working not in (None, "MARK_PRICE", "CONTRACT_PRICE") or (
                working == "CONTRACT_PRICE" and kind in _CONDITIONAL):
            raise BinanceError(-4000, "Conditional orders trigger on the mark price "
                               "(workingType MARK_PRICE).")
        if close_position not in (None, "false"):
            raise BinanceError(-4000, "closePosition is not supported: send the position's "
                               "size with reduceOnly.")
        if reduce_text not in (None, "true", "false"):
            raise BinanceError(-1100, "Illegal characters found in parameter 'reduceOnly'.")
        args: dict[str, Any] = {"symbol": symbol, "side": side, "type": kind,
                                "qty": _lots(qty_text, spec)}
        if kind in ("LIMIT", "STOP", "TAKE_PROFIT"):
            if price_text_ is None:
                raise missing("price")
            if kind == "LIMIT" and tif is None:
                raise missing("timeInForce")
            args["price"] = _ticks(price_text_, spec, "price")
        elif price_text_ is not None:
            raise BinanceError(-1106, "Parameter 'price' sent when not required.")
        if kind in _CONDITIONAL:
            if stop_text is None:
                raise missing("triggerPrice" if algo else "stopPrice")
            args["triggerPrice"] = _ticks(stop_text, spec, "stopPrice")
        elif stop_text is not None:
            raise BinanceError(-1106, "Parameter 'stopPrice' sent when not required.")
        if kind == "LIMIT" or (kind == "MARKET" and tif is not None):
            args["timeInForce"] = tif
        if reduce_text == "true":
            args["reduceOnly"] = True
        if cid is not None:
            if cid.startswith((SYNTHETIC_ID, LIQUIDATION_ID)):
                raise BinanceError(-4015, f"Client order id is not valid: the prefixes "
                                   f"{SYNTHETIC_ID} and {LIQUIDATION_ID} name the venue's.")
            args["clientOrderId"] = cid
        return symbol, args

    async def query_order(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        oid, cid = _which(p)
        p.done()
        record = self.f.tape.orders.get(account, oid, cid)
        if record is None or record.symbol != symbol:
            raise BinanceError(-2013, "Order does not exist.")
        return json_response(self._order_json(record))

    async def cancel_order(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        oid, cid = _which(p)
        p.done()
        record = self.f.tape.orders.get(account, oid, cid)
        if record is None or record.symbol != symbol or record.done:
            raise BinanceError(-2011, "Unknown order sent.")
        await self._call(account, "order.cancel", {"symbol": symbol,
                                                   "orderId": record.order_id})
        return json_response(self._order_json(record))

    async def modify_order(self, request: web.Request) -> web.Response:
        """Binance's order modify (PUT): a resting LIMIT order's new price and quantity (the
        order's whole size, what it filled included), as the venue's amend: the order keeps
        its id; keeping the price and not growing keeps its place in the queue. A quantity
        at or below what it filled cancels the order, as on Binance."""
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        spec = self.f.venue().spec(symbol)
        side = p.need("side")
        qty_text = p.need("quantity")
        price = p.need("price")
        oid, cid = _which(p)
        p.done()
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        record = self.f.tape.orders.get(account, oid, cid)
        if record is None or record.symbol != symbol or record.done:
            raise BinanceError(-2013, "Order does not exist.")
        if record.type != "LIMIT":
            raise BinanceError(-4000, "Only LIMIT orders can be modified.")
        if side != side_name(record.side):
            raise BinanceError(-4000, "The side of an order cannot be modified.")
        qty, ticks = _lots(qty_text, spec), _ticks(price, spec, "price")

        def prepare() -> tuple[str, dict[str, Any]]:
            """In the sequencer's turn: what has filled by then is known exactly."""
            ids = {"symbol": symbol, "orderId": record.order_id}
            if qty <= record.executed:
                return "order.cancel", ids
            return "order.amend", {**ids, "price": ticks, "qty": qty - record.executed}

        await self._call(account, "order.amend", prepare=prepare)
        return json_response(self._order_json(record))

    async def open_orders(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol_text = p.get("symbol")
        p.done()
        records = await self._open_records(account, symbol_text)
        return json_response([self._order_json(r) for r in records])

    async def _open_records(self, account: int, symbol_text: str | None, *,
                            conditional: bool = False) -> list[OrderRecord]:
        """The account's open orders (``conditional``: only those waiting for a trigger),
        as the venue has them at the sequencer's turn, with their records."""
        args = {} if symbol_text is None else {"symbol": self.f.market(symbol_text)}
        result = await self._call(account, "account.openOrders", args,
                                  unknown_account={"orders": []})
        out = []
        for o in result["orders"]:
            record = self.f.tape.orders.get(account, o["orderId"], None)
            if record is not None and (not conditional or "triggerPrice" in o):
                out.append(record)
        return out

    async def cancel_all(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        p.done()
        await self._call(account, "order.cancelAll", {"symbol": symbol})
        return json_response({"code": 200, "msg": "The operation of cancel all open order is "
                                                "done."})

    async def query_algo_order(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        record = self._algo_record(account, p)
        return json_response(self._algo_json(record))

    async def cancel_algo_order(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        record = self._algo_record(account, p)
        if record.done or record.triggered:
            raise BinanceError(-2011, "Unknown order sent.")
        await self._call(account, "order.cancel", {"symbol": record.symbol,
                                                   "orderId": record.order_id})
        return json_response({"algoId": record.order_id,
                              "clientAlgoId": record.name, "code": "200",
                              "msg": "success"})

    async def open_algo_orders(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol_text = p.get("symbol")
        p.get("algoType")
        p.done()
        records = await self._open_records(account, symbol_text, conditional=True)
        return json_response([self._algo_json(r) for r in records])

    def _algo_record(self, account: int, p: Any) -> OrderRecord:
        symbol_text = p.get("symbol")
        symbol = self.f.market(symbol_text) if symbol_text is not None else None
        algo_id = p.optional("algoId")
        cid = p.get("clientAlgoId")
        p.done()
        if algo_id is None and cid is None:
            raise BinanceError(-1102, "Param 'algoId' or 'clientAlgoId' must be sent.")
        record: OrderRecord | None = self.f.tape.orders.get(account, algo_id, cid)
        if record is None or record.stop_price is None or (
                symbol is not None and record.symbol != symbol):
            raise BinanceError(-2013, "Order does not exist.")
        return record

    def _algo_json(self, r: OrderRecord) -> dict[str, Any]:
        spec = self.f.venue().spec(r.symbol)
        if r.done:
            status = "FINISHED" if r.status == "FILLED" else r.status
        else:
            status = "TRIGGERED" if r.triggered else "NEW"
        return {
            "algoId": r.order_id,
            "clientAlgoId": r.name,
            "algoType": "CONDITIONAL", "orderType": r.type,
            "symbol": self.f.symbols().to_binance[r.symbol], "side": side_name(r.side),
            "positionSide": "BOTH", "timeInForce": r.time_in_force,
            "quantity": lots_text(r.orig_qty, spec), "algoStatus": status,
            "triggerPrice": price_text(r.stop_price or 0, spec),
            "price": price_text(r.price or 0, spec), "icebergQuantity": None,
            "selfTradePreventionMode": "NONE", "workingType": "MARK_PRICE",
            "priceMatch": "NONE", "closePosition": False, "priceProtect": False,
            "reduceOnly": r.reduce_only, "createTime": r.time_ms, "updateTime": r.update_ms,
            "triggerTime": r.trigger_ms, "goodTillDate": 0,
        }

    def _order(self, account: int, order_id: int, symbol: str) -> dict[str, Any]:
        record = self.f.tape.orders.get(account, order_id, None)
        if record is None:
            raise BinanceError(-1000, "The order was placed but its record is missing.", 500)
        return self._order_json(record)

    def _order_json(self, r: OrderRecord) -> dict[str, Any]:
        spec = self.f.venue().spec(r.symbol)
        avg = Fraction(r.quote, r.executed * spec.multiplier) if r.executed else Fraction(0)
        return {
            "orderId": r.order_id, "symbol": self.f.symbols().to_binance[r.symbol],
            "status": r.status,
            "clientOrderId": r.name,
            "price": price_text(r.price or 0, spec),
            "avgPrice": average_text(avg, spec),
            "origQty": lots_text(r.orig_qty, spec), "executedQty": lots_text(r.executed, spec),
            "cumQty": lots_text(r.executed, spec), "cumQuote": usd_text(r.quote),
            "timeInForce": r.time_in_force, "type": r.type, "origType": r.type,
            "reduceOnly": r.reduce_only, "closePosition": False, "side": side_name(r.side),
            "positionSide": "BOTH",
            "stopPrice": price_text(r.stop_price or 0, spec),
            "workingType": "MARK_PRICE", "priceProtect": False, "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE", "goodTillDate": 0,
            "time": r.time_ms, "updateTime": r.update_ms,
        }

    # -- the account's own history ------------------------------------------------------------

    async def all_orders(self, request: web.Request) -> web.Response:
        """The account's orders in one market, open and finished (the records: the last
        100,000 finished orders of all accounts); from ``orderId`` on, or the most recent."""
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        from_id = p.optional("orderId")
        start, end = p.optional("startTime"), p.optional("endTime")
        limit = p.limit(500, 1000)
        p.done()
        rows = [r for r in self.f.tape.orders.by_account.get(account, {}).values()
                if r.symbol == symbol and (from_id is None or r.order_id >= from_id)
                and (start is None or r.time_ms >= start) and (end is None or r.time_ms <= end)]
        rows.sort(key=lambda r: r.order_id)
        rows = rows[:limit] if from_id is not None else rows[-limit:]
        return json_response([self._order_json(r) for r in rows])

    async def commission_rate(self, request: web.Request) -> web.Response:
        """The market's fees (the venue charges every account the same)."""
        _, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        p.done()
        spec = self.f.venue().spec(symbol)
        return json_response({"symbol": self.f.symbols().to_binance[symbol],
                              "makerCommissionRate": decimal_text(
                                  Fraction(spec.maker_fee_ppb, PPB)),
                              "takerCommissionRate": decimal_text(
                                  Fraction(spec.taker_fee_ppb, PPB))})

    async def user_trades(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        order_id = p.optional("orderId")
        start, end = p.optional("startTime"), p.optional("endTime")
        from_id = p.optional("fromId")
        limit = p.limit(500, 1000)
        p.done()
        if from_id is not None and (start is not None or end is not None):
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        spec = self.f.venue().spec(symbol)
        rows = [t for t in self.f.tape.user_trades.get(account, ()) if t.symbol == symbol
                and (order_id is None or t.order_id == order_id)
                and (start is None or t.ms >= start) and (end is None or t.ms <= end)
                and (from_id is None or t.trade_id >= from_id)]
        rows = rows[:limit] if from_id is not None or start is not None else rows[-limit:]
        name = self.f.symbols().to_binance[symbol]
        return json_response([{
            "symbol": name, "id": t.trade_id, "orderId": t.order_id,
            "side": side_name(t.side), "buyer": t.side > 0, "maker": t.maker,
            "price": price_text(t.price, spec), "qty": lots_text(t.qty, spec),
            "quoteQty": usd_text(t.price * t.qty * spec.multiplier),
            "realizedPnl": usd_text(t.realized), "commission": usd_text(t.fee),
            "commissionAsset": "USDT", "positionSide": "BOTH", "time": t.ms} for t in rows])

    async def income(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol_text = p.get("symbol")
        kind = p.get("incomeType")
        start, end = p.optional("startTime"), p.optional("endTime")
        p.get("page")
        limit = p.limit(100, 1000)
        p.done()
        symbol = self.f.market(symbol_text) if symbol_text is not None else None
        rows = [i for i in self.f.tape.income.get(account, ())
                if (symbol is None or i.symbol == symbol) and (kind is None or i.kind == kind)
                and (start is None or i.ms >= start) and (end is None or i.ms <= end)]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return json_response([{
            "symbol": self.f.symbols().to_binance[i.symbol], "incomeType": i.kind,
            "income": usd_text(i.amount), "asset": "USDT", "info": i.kind, "time": i.ms,
            "tranId": i.tran_id, "tradeId": "" if i.trade_id is None else str(i.trade_id)}
            for i in rows])

    # -- account ----------------------------------------------------------------------------

    async def _account(self, account: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        zero = {"balance": 0, "equity": 0, "marginUsed": 0, "maintenanceMargin": 0,
                "available": 0, "withdrawable": 0}  # an account that never deposited
        balance = await self._call(account, "account.balance", {}, unknown_account=zero)
        positions = await self._call(account, "account.positions", {},
                                     unknown_account={"positions": []})
        return balance, positions["positions"]

    def _assets(self, b: dict[str, Any]) -> dict[str, Any]:
        upnl = b["equity"] - b["balance"]
        return {"asset": "USDT", "walletBalance": usd_text(b["balance"]),
                "unrealizedProfit": usd_text(upnl), "marginBalance": usd_text(b["equity"]),
                "maintMargin": usd_text(b["maintenanceMargin"]),
                "initialMargin": usd_text(b["marginUsed"]),
                "positionInitialMargin": usd_text(b["marginUsed"]),
                "openOrderInitialMargin": "0", "crossWalletBalance": usd_text(b["balance"]),
                "crossUnPnl": usd_text(upnl), "availableBalance": usd_text(b["available"]),
                "maxWithdrawAmount": usd_text(b["withdrawable"]), "marginAvailable": True,
                "updateTime": self.f.venue_ms()}

    async def account(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        p.done()
        b, positions = await self._account(account)
        asset = self._assets(b)
        return json_response({
            "totalInitialMargin": asset["initialMargin"],
            "totalMaintMargin": asset["maintMargin"],
            "totalWalletBalance": asset["walletBalance"],
            "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"],
            "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": asset["crossWalletBalance"],
            "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"],
            "assets": [asset],
            "positions": [self._position(row) for row in positions if row["size"]],
        })

    async def balance(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        p.done()
        b, _ = await self._account(account)
        asset = self._assets(b)
        return json_response([{"accountAlias": f"gaemi-{account}", "asset": "USDT",
                             "balance": asset["walletBalance"],
                             "crossWalletBalance": asset["crossWalletBalance"],
                             "crossUnPnl": asset["crossUnPnl"],
                             "availableBalance": asset["availableBalance"],
                             "maxWithdrawAmount": asset["maxWithdrawAmount"],
                             "marginAvailable": True, "updateTime": asset["updateTime"]}])

    async def position_risk(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol_text = p.get("symbol")
        p.done()
        chosen = self.f.chosen_symbols(symbol_text)
        _, positions = await self._account(account)
        by_symbol = {row["symbol"]: row for row in positions}
        v3 = "/v3/" in request.path
        rows = []
        for s in chosen:
            row = by_symbol.get(s)
            if v3 and (row is None or not row["size"]):
                continue  # v3 lists open positions only
            rows.append(self._position(row or {"symbol": s, "size": 0, "entryPrice": 0,
                                               "unrealizedPnl": 0, "marginMode": "cross",
                                               "leverage": None, "isolatedMargin": 0,
                                               "maintenanceMargin": 0,
                                               "liquidationPrice": None}))
        return json_response(rows)

    def _position(self, row: dict[str, Any]) -> dict[str, Any]:
        symbol = row["symbol"]
        venue = self.f.venue()
        spec = venue.spec(symbol)
        mark = venue.market(symbol).mark or 0
        size = row["size"]
        # the venue's own default for a market the account never set (risk/venue/state.py)
        leverage = row["leverage"] or min(DEFAULT_LEVERAGE, spec.max_leverage)
        notional = size * mark * spec.multiplier
        initial = abs(notional) // leverage
        return {
            "symbol": self.f.symbols().to_binance[symbol], "positionSide": "BOTH",
            "positionAmt": _signed_lots(size, spec),
            "entryPrice": price_text(row["entryPrice"], spec),
            "breakEvenPrice": price_text(row["entryPrice"], spec),
            "markPrice": price_text(mark, spec),
            "unRealizedProfit": usd_text(row["unrealizedPnl"]),
            "liquidationPrice": price_text(row["liquidationPrice"] or 0, spec),
            "leverage": str(leverage),
            "maxNotionalValue": usd_text(_max_notional(spec, leverage)),
            "marginType": "isolated" if row["marginMode"] == "isolated" else "cross",
            "isolatedMargin": usd_text(row["isolatedMargin"]),
            "isolatedWallet": usd_text(row["isolatedMargin"]),
            "isAutoAddMargin": "false", "notional": usd_text(notional),
            "initialMargin": usd_text(initial), "positionInitialMargin": usd_text(initial),
            "openOrderInitialMargin": "0", "maintMargin": usd_text(row["maintenanceMargin"]),
            "adl": 0, "bidNotional": "0", "askNotional": "0",
            "updateTime": self.f.venue_ms(),
        }

    async def leverage_bracket(self, request: web.Request) -> web.Response:
        _, p = await self._params(request)
        symbol_text = p.get("symbol")
        p.done()
        venue = self.f.venue()
        rows = []
        for s in self.f.chosen_symbols(symbol_text):
            spec = venue.spec(s)
            brackets, floor = [], 0
            for i, tier in enumerate(spec.tiers):
                cap = tier.max_notional if tier.max_notional is not None else \
                    _max_notional(spec, 1)
                brackets.append({"bracket": i + 1, "initialLeverage": tier.max_leverage,
                                 "notionalCap": int(Fraction(cap, UNIT)),
                                 "notionalFloor": int(Fraction(floor, UNIT)),
                                 "maintMarginRatio": float(Fraction(tier.mmr_ppb, 10**9)),
                                 "cum": float(Fraction(spec.cums[i], UNIT))})
                floor = cap
            rows.append({"symbol": self.f.symbols().to_binance[s], "notionalCoef": 1.0,
                         "brackets": brackets})
        return json_response(rows[0] if symbol_text is not None else rows)

    async def set_leverage(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        text = p.need("leverage")
        p.done()
        if not (text.isascii() and text.isdigit() and len(text) <= 3) or \
                not 1 <= int(text) <= 125:
            raise BinanceError(-4028, "Leverage is not valid.")
        result = await self._call(account, "account.setLeverage",
                                  {"symbol": symbol, "leverage": int(text)})
        spec = self.f.venue().spec(symbol)
        return json_response({"leverage": result["leverage"],
                            "maxNotionalValue": usd_text(_max_notional(spec, result["leverage"])),
                            "symbol": self.f.symbols().to_binance[symbol]})

    async def set_margin_type(self, request: web.Request) -> web.Response:
        account, p = await self._params(request)
        symbol = self.f.market(p.need("symbol"))
        kind = p.need("marginType")
        p.done()
        modes = {"ISOLATED": "isolated", "CROSSED": "cross", "CROSS": "cross"}
        if kind.upper() not in modes:
            raise BinanceError(-4044, "The margin type is invalid (ISOLATED or CROSSED).")
        await self._call(account, "account.setMarginMode",
                         {"symbol": symbol, "mode": modes[kind.upper()]})
        return json_response({"code": 200, "msg": "success"})

    async def get_position_mode(self, request: web.Request) -> web.Response:
        _, p = await self._params(request)
        p.done()
        return json_response({"dualSidePosition": False})

    async def set_position_mode(self, request: web.Request) -> web.Response:
        _, p = await self._params(request)
        dual = p.need("dualSidePosition")
        p.done()
        if dual == "false":
            raise BinanceError(-4059, "No need to change position side.")
        raise BinanceError(-4068, "Hedge mode is not supported: positions are one-way "
                           "(net) on this venue.")

    def routes(self) -> list[tuple[str, str, Callable[[web.Request], Awaitable[Any]]]]:
        return [
            ("POST", "/fapi/v1/order", self.new_order),
            ("POST", "/fapi/v1/batchOrders", self.batch_orders),
            ("DELETE", "/fapi/v1/batchOrders", self.cancel_batch),
            ("POST", "/fapi/v1/algoOrder", self.new_algo_order),
            ("GET", "/fapi/v1/algoOrder", self.query_algo_order),
            ("DELETE", "/fapi/v1/algoOrder", self.cancel_algo_order),
            ("GET", "/fapi/v1/openAlgoOrders", self.open_algo_orders),
            ("GET", "/fapi/v1/order", self.query_order),
            ("DELETE", "/fapi/v1/order", self.cancel_order),
            ("PUT", "/fapi/v1/order", self.modify_order),
            ("GET", "/fapi/v1/openOrders", self.open_orders),
            ("GET", "/fapi/v1/userTrades", self.user_trades),
            ("GET", "/fapi/v1/allOrders", self.all_orders),
            ("GET", "/fapi/v1/commissionRate", self.commission_rate),
            ("GET", "/fapi/v1/income", self.income),
            ("DELETE", "/fapi/v1/allOpenOrders", self.cancel_all),
            ("GET", "/fapi/v2/account", self.account),
            ("GET", "/fapi/v3/account", self.account),
            ("GET", "/fapi/v2/balance", self.balance),
            ("GET", "/fapi/v3/balance", self.balance),
            ("GET", "/fapi/v2/positionRisk", self.position_risk),
            ("GET", "/fapi/v3/positionRisk", self.position_risk),
            ("GET", "/fapi/v1/leverageBracket", self.leverage_bracket),
            ("POST", "/fapi/v1/leverage", self.set_leverage),
            ("POST", "/fapi/v1/marginType", self.set_margin_type),
            ("GET", "/fapi/v1/positionSide/dual", self.get_position_mode),
            ("POST", "/fapi/v1/positionSide/dual", self.set_position_mode),
        ]


def _batch_item(item: Any) -> MultiDict[str]:
    """One order of a batch as parameters: text values, and JSON booleans and integers as
    Binance reads them (ccxt sends ``"reduceOnly": true``); a JSON number with a fraction is
    refused: a price or size is sent as text, exactly."""
    if not isinstance(item, dict):
        raise BinanceError(-1100, "Each order of batchOrders is an object.")
    out: MultiDict[str] = MultiDict()
    for k, v in item.items():
        if type(v) is bool:
            v = "true" if v else "false"
        elif type(v) is int:
            v = str(v)
        if not isinstance(v, str):
            raise BinanceError(-1100, f"Illegal value for parameter '{k}': send it as text.")
        out[k] = v
    return out


def _one_of(p: Any, *names: str) -> tuple[str, str] | None:
    """The one of ``names`` (spellings of one parameter) that was sent, and its value."""
    sent = [(name, value) for name in names if (value := p.get(name)) is not None]
    if len(sent) > 1:
        raise BinanceError(-1101, f"Duplicate values for parameter '{names[0]}'.")
    return sent[0] if sent else None


def _id_list(name: str, text: str, kind: type) -> list[Any]:
    """A JSON list of 1 to 10 order ids (``int``: positive integers) or client ids."""
    def valid(x: Any) -> bool:
        if kind is int:
            return type(x) is int and x > 0
        return type(x) is str and 0 < len(x) <= 36
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_CANCELS or \
            not all(valid(x) for x in items):
        raise BinanceError(-1130, f"Data sent for parameter '{name}' is not valid: a JSON "
                           f"list of 1 to {MAX_CANCELS} "
                           f"{'order ids' if kind is int else 'client order ids'}.")
    return items


def _which(p: Any) -> tuple[int | None, str | None]:
    order_id = p.optional("orderId")
    cid = p.get("origClientOrderId")
    if order_id is None and cid is None:
        raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                           "both were empty/null!")
    return order_id, cid


def _lots(text: str, spec: MarketSpec) -> int:
    try:
        lots = to_lots(text, spec)
    except OffGrid:
        raise BinanceError(-4023, f"Quantity {text} is not a multiple of the step size "
                           f"{spec.lot_size}.") from None
    except ValueError:
        raise BinanceError(-1100, "Illegal characters found in parameter 'quantity'.") \
            from None
    if lots <= 0:
        raise BinanceError(-4003, "Quantity less than or equal to zero.")
    if lots > spec.max_order_qty:
        raise BinanceError(-4005, "Quantity greater than max quantity.")
    return lots


def _ticks(text: str, spec: MarketSpec, name: str) -> int:
    try:
        ticks = to_ticks(text, spec)
    except OffGrid:
        raise BinanceError(-4014, f"Price not increased by tick size "
                           f"{price_text(1, spec)}.") from None
    except ValueError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.") \
            from None
    if ticks <= 0:
        raise BinanceError(-4013, "Price less than min price.")
    if ticks > spec.max_price:
        raise BinanceError(-4016, f"Price greater than max price "
                           f"{price_text(spec.max_price, spec)}.")
    return ticks


def _signed_lots(lots: int, spec: MarketSpec) -> str:
    return ("-" if lots < 0 else "") + lots_text(abs(lots), spec)


def _max_notional(spec: MarketSpec, leverage: int) -> int:
    """The largest notional (µ$) a position may have at ``leverage``: the top of the last
    tier that allows it."""
    best = 0
    for tier in spec.tiers:
        if tier.max_leverage >= leverage:
            best = tier.max_notional if tier.max_notional is not None else \
                spec.max_price * spec.open_interest_cap * spec.multiplier
    return best
