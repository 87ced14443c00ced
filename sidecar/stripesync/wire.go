package stripesync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// The Stripe objects are decoded here with only the fields tollgate reads, tolerant of both API shapes: the
// 2023-10-16 shape that stripe-go v76 pins (current_period_* on the subscription) and the shape of API
// 2025-03-31 and later (current_period_* on each subscription item; invoice.subscription moved under
// invoice.parent). stripe-go's own structs follow one shape, and a field that moved would silently read as 0.

// Subscription is a Stripe subscription as tollgate stores it.
type Subscription struct {
	ID string
	// Customer is the Stripe customer id (cus_...).
	Customer string
	// TollgateCustomer is the Stripe customer's metadata.tollgate_customer; "" when absent or when the customer
	// was not expanded.
	TollgateCustomer string
	Status           string
	PriceIDs         []string
	ProductIDs       []string
	// PeriodStart and PeriodEnd are the current billing period; zero when Stripe gave none.
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	// Created is zero when Stripe gave none.
	Created time.Time
	// Account is the connected account the subscription was fetched from; "" = the platform's own.
	Account string
	// PauseCollection is pause_collection.behavior (void, keep_as_draft, mark_uncollectible); "" when payment
	// collection is not paused. PauseResumesAt is pause_collection.resumes_at; zero when none.
	PauseCollection string
	PauseResumesAt  time.Time
	// TrialStart and TrialEnd are the trial's; zero when it has none.
	TrialStart time.Time
	TrialEnd   time.Time
	// HasPaymentMethod says whether the subscription (default_payment_method, default_source) or its customer
	// (invoice_settings.default_payment_method, default_source) has a payment method; nil when unknown (the
	// customer was not expanded).
	HasPaymentMethod *bool
}

// expandable is an id that Stripe gives either as a string or, when expanded, as an object.
type expandable struct {
	ID       string
	Deleted  bool
	Metadata map[string]string
	// Expanded is true when Stripe gave the object, not only its id.
	Expanded bool
	// PaymentMethod is true when an expanded customer has invoice_settings.default_payment_method or
	// default_source.
	PaymentMethod bool
}

func (e *expandable) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*e = expandable{}
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		return json.Unmarshal(data, &e.ID)
	}
	var obj struct {
		ID              string            `json:"id"`
		Deleted         bool              `json:"deleted"`
		Metadata        map[string]string `json:"metadata"`
		DefaultSource   *expandable       `json:"default_source"`
		InvoiceSettings struct {
			DefaultPaymentMethod *expandable `json:"default_payment_method"`
		} `json:"invoice_settings"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	*e = expandable{ID: obj.ID, Deleted: obj.Deleted, Metadata: obj.Metadata, Expanded: true,
		PaymentMethod: obj.DefaultSource.present() || obj.InvoiceSettings.DefaultPaymentMethod.present()}
	return nil
}

func (e *expandable) present() bool { return e != nil && e.ID != "" }

type wireItem struct {
	ID    string `json:"id"`
	Price struct {
		ID      string     `json:"id"`
		Product expandable `json:"product"`
	} `json:"price"`
	CurrentPeriodStart int64 `json:"current_period_start"`
	CurrentPeriodEnd   int64 `json:"current_period_end"`
}

type wireItemList struct {
	stripe.APIResource
	Data    []wireItem `json:"data"`
	HasMore bool       `json:"has_more"`
}

type wireSubscription struct {
	stripe.APIResource
	ID                 string       `json:"id"`
	Customer           expandable   `json:"customer"`
	Status             string       `json:"status"`
	Created            int64        `json:"created"`
	CurrentPeriodStart int64        `json:"current_period_start"`
	CurrentPeriodEnd   int64        `json:"current_period_end"`
	CancelAtPeriodEnd  bool         `json:"cancel_at_period_end"`
	Items              wireItemList `json:"items"`
	PauseCollection    *struct {
		Behavior  string `json:"behavior"`
		ResumesAt int64  `json:"resumes_at"`
	} `json:"pause_collection"`
	TrialStart           int64       `json:"trial_start"`
	TrialEnd             int64       `json:"trial_end"`
	DefaultPaymentMethod *expandable `json:"default_payment_method"`
	DefaultSource        *expandable `json:"default_source"`
}

type wireSubscriptionList struct {
	stripe.APIResource
	Data    []*wireSubscription `json:"data"`
	HasMore bool                `json:"has_more"`
}

type wireCheckoutSession struct {
	stripe.APIResource
	ID                string            `json:"id"`
	ClientReferenceID string            `json:"client_reference_id"`
	Customer          expandable        `json:"customer"`
	Subscription      expandable        `json:"subscription"`
	Invoice           expandable        `json:"invoice"`
	Mode              string            `json:"mode"`
	Status            string            `json:"status"`
	PaymentStatus     string            `json:"payment_status"`
	URL               string            `json:"url"`
	Metadata          map[string]string `json:"metadata"`
	LineItems         *wireLineItems    `json:"line_items"`
}

// CheckoutSession is a Stripe Checkout Session as tollgate reads it.
type CheckoutSession struct {
	ID                string
	ClientReferenceID string
	Customer          string // "" when the session created none (payment mode without a customer)
	// TollgateCustomer is the Stripe customer's metadata.tollgate_customer; "" when absent.
	TollgateCustomer string
	Subscription     string // "" unless mode=subscription
	// Invoice is the invoice of a payment-mode session that created one (invoice_creation); "" when none.
	Invoice       string
	Mode          string // payment, subscription or setup
	Status        string // open, complete or expired
	PaymentStatus string // paid, unpaid or no_payment_required
	// URL is where the customer pays (a session just created); "" once it is complete.
	URL string
	// Metadata is the session's own metadata (tollgate_click, tollgate_email, ... on sessions of upgrade links).
	Metadata map[string]string
	// Lines are its line items (every page).
	Lines []LineItem
}

// Paid reports whether a completed payment-mode session was paid (or needed no payment).
func (cs CheckoutSession) Paid() bool {
	return cs.Status == "complete" && (cs.PaymentStatus == "paid" || cs.PaymentStatus == "no_payment_required")
}

// LineItem is a price bought, and how many: a line of a Checkout Session or an invoice.
type LineItem struct {
	Price    string
	Quantity int64
}

// wireLineItem is a Checkout Session line item or an invoice line, in either shape: price.id (Checkout, and
// invoices up to API 2025-03-31), or pricing.price_details.price (invoices since 2025-03-31.basil).
type wireLineItem struct {
	ID      string     `json:"id"`
	Price   expandable `json:"price"`
	Pricing *struct {
		Type         string `json:"type"`
		PriceDetails *struct {
			Price expandable `json:"price"`
		} `json:"price_details"`
	} `json:"pricing"`
	Quantity *int64 `json:"quantity"`
}

func (l wireLineItem) item() (LineItem, bool) {
	price := l.Price.ID
	if price == "" && l.Pricing != nil && l.Pricing.PriceDetails != nil {
		price = l.Pricing.PriceDetails.Price.ID
	}
	if price == "" {
		return LineItem{}, false // a line of no price (a one-off amount, a tax line)
	}
	q := int64(1) // a line without a quantity is one of its price
	if l.Quantity != nil && *l.Quantity > 0 {
		q = *l.Quantity
	}
	return LineItem{Price: price, Quantity: q}, true
}

type wireLineItems struct {
	stripe.APIResource
	Data    []wireLineItem `json:"data"`
	HasMore bool           `json:"has_more"`
}

func (w *wireLineItems) items() []LineItem {
	if w == nil {
		return nil
	}
	var out []LineItem
	for _, l := range w.Data {
		if it, ok := l.item(); ok {
			out = append(out, it)
		}
	}
	return out
}

type wireInvoice struct {
	stripe.APIResource
	ID           string        `json:"id"`
	Status       string        `json:"status"`
	Customer     expandable    `json:"customer"`
	Subscription expandable    `json:"subscription"`
	Lines        wireLineItems `json:"lines"`
	Parent       struct {
		SubscriptionDetails struct {
			Subscription expandable `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
}

// Invoice is a Stripe invoice as tollgate reads it: for top-up packs bought on it.
type Invoice struct {
	ID     string
	Status string // draft, open, paid, uncollectible or void
	// Customer is the Stripe customer id; TollgateCustomer its metadata.tollgate_customer ("" when absent).
	Customer         string
	TollgateCustomer string
	// Subscription is the invoice's subscription, in either API shape; "" for an invoice of none.
	Subscription string
	// Lines are its lines (every page) that have a price.
	Lines []LineItem
}

// PriceIDs and Quantities split lines for tollgate.record_stripe_topup.
func PriceIDs(lines []LineItem) (prices []string, quantities []int64) {
	prices, quantities = []string{}, []int64{}
	for _, l := range lines {
		prices = append(prices, l.Price)
		quantities = append(quantities, l.Quantity)
	}
	return prices, quantities
}

func unixTime(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// subscription normalizes a decoded subscription: the period comes from the subscription itself or, on API
// 2025-03-31 and later, from its items (the first item that has one).
func (w *wireSubscription) subscription() (Subscription, error) {
	if w.ID == "" || w.Customer.ID == "" || w.Status == "" {
		return Subscription{}, fmt.Errorf("stripe: subscription %q lacks id, customer or status", w.ID)
	}
	s := Subscription{
		ID:                w.ID,
		Customer:          w.Customer.ID,
		Status:            w.Status,
		CancelAtPeriodEnd: w.CancelAtPeriodEnd,
		Created:           unixTime(w.Created),
		PeriodStart:       unixTime(w.CurrentPeriodStart),
		PeriodEnd:         unixTime(w.CurrentPeriodEnd),
	}
	if !w.Customer.Deleted {
		s.TollgateCustomer = w.Customer.Metadata["tollgate_customer"]
	}
	if w.PauseCollection != nil && w.PauseCollection.Behavior != "" {
		s.PauseCollection = w.PauseCollection.Behavior
		s.PauseResumesAt = unixTime(w.PauseCollection.ResumesAt)
	}
	s.TrialStart, s.TrialEnd = unixTime(w.TrialStart), unixTime(w.TrialEnd)
	if pm := w.DefaultPaymentMethod.present() || w.DefaultSource.present(); pm || w.Customer.Expanded {
		pm = pm || w.Customer.PaymentMethod
		s.HasPaymentMethod = &pm
	}
	for _, it := range w.Items.Data {
		if it.Price.ID != "" {
			s.PriceIDs = appendUnique(s.PriceIDs, it.Price.ID)
		}
		if it.Price.Product.ID != "" {
			s.ProductIDs = appendUnique(s.ProductIDs, it.Price.Product.ID)
		}
		if s.PeriodStart.IsZero() && s.PeriodEnd.IsZero() && it.CurrentPeriodStart > 0 && it.CurrentPeriodEnd > 0 {
			s.PeriodStart, s.PeriodEnd = unixTime(it.CurrentPeriodStart), unixTime(it.CurrentPeriodEnd)
		}
	}
	return s, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// eventObject is the part of an event's data.object that says what to re-fetch.
type eventObject struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	// invoice (API 2023-10-16) and subscription schedule
	Subscription expandable `json:"subscription"`
	// subscription schedule, once released (subscription is then null)
	ReleasedSubscription expandable `json:"released_subscription"`
	Parent               struct {   // invoice, API 2025-03-31 and later
		SubscriptionDetails struct {
			Subscription expandable `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
}

// scheduleSubscription is the subscription a subscription schedule governs, or governed until it was released.
func (o eventObject) scheduleSubscription() string {
	if o.Subscription.ID != "" {
		return o.Subscription.ID
	}
	return o.ReleasedSubscription.ID
}

func (o eventObject) invoiceSubscription() string {
	if o.Subscription.ID != "" {
		return o.Subscription.ID
	}
	return o.Parent.SubscriptionDetails.Subscription.ID
}
