// Package notify 알림 발송: 카카오 알림톡, SMS, 푸시.
package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

type Notifier struct {
	client   *http.Client
	apiKey   string
	sender   string
	quietFrom int
	quietTo   int
}

// SendAlimtalk 카카오 알림톡 템플릿에 변수를 채워 고객에게 발송한다.
func (n *Notifier) SendAlimtalk(phone, templateCode string, vars map[string]string) error {
	body, _ := json.Marshal(map[string]any{"to": phone, "template": templateCode, "variables": vars})
	req, _ := http.NewRequest("POST", "https://alimtalk.example.com/v2/send", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+n.apiKey)
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("alimtalk: %s", resp.Status)
	}
	return nil
}

// SendSMS 알림톡이 실패했을 때 대신 문자 메시지를 보낸다. 90바이트가 넘으면 장문(LMS)으로 보낸다.
func (n *Notifier) SendSMS(phone, text string) error {
	kind := "SMS"
	if len(text) > 90 {
		kind = "LMS"
	}
	body, _ := json.Marshal(map[string]string{"from": n.sender, "to": phone, "type": kind, "text": text})
	_, err := n.client.Post("https://sms.example.com/send", "application/json", bytes.NewReader(body))
	return err
}

// InQuietHours 야간 방해 금지 시간대에는 마케팅 알림을 보내지 않도록 현재 시각을 검사한다.
func (n *Notifier) InQuietHours(now time.Time) bool {
	hour := now.Hour()
	if n.quietFrom > n.quietTo {
		return hour >= n.quietFrom || hour < n.quietTo
	}
	return hour >= n.quietFrom && hour < n.quietTo
}

// ShippingStartedMessage 배송이 시작되었다는 안내 문구를 주문 번호와 송장 번호로 만든다.
func ShippingStartedMessage(orderNo, courier, invoiceNo string) string {
	return fmt.Sprintf("[배송 시작] 주문 %s 상품이 %s(송장 %s)로 출발했습니다.", orderNo, courier, invoiceNo)
}

// NormalizePhone 하이픈과 국가 번호를 없애 010으로 시작하는 11자리 번호로 맞춘다.
func NormalizePhone(phone string) string {
	digits := strings.NewReplacer("-", "", " ", "", "+82", "0").Replace(phone)
	if strings.HasPrefix(digits, "00") {
		digits = digits[1:]
	}
	return digits
}
