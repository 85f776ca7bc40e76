package restjson

import (
	"strings"
	"sync"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The REST contract predates the proto enums and spells their values as
// the seed's lower-case strings. One rule maps between the two for every
// enum: a value's JSON name is its name without the enum's UPPER_SNAKE
// prefix, in lower case (JOB_STATUS_IN_PROGRESS of JobStatus is
// "in_progress"), and the zero value's is "", which is what the seed showed
// for an unset string.

// unknownEnumNumber is what a string that names no value decodes to. No enum
// of this API defines it (buf lint keeps values positive after the zero), so
// the service refuses it as it refused the unknown string, with the same
// reason code. Mapping it to zero instead would turn a typo into the
// default.
const unknownEnumNumber protoreflect.EnumNumber = -1

// enumNames holds both directions of the rule for one enum.
type enumNames struct {
	byNumber map[protoreflect.EnumNumber]string
	byName   map[string]protoreflect.EnumNumber
}

var enumCache sync.Map // protoreflect.FullName → *enumNames

func namesOf(ed protoreflect.EnumDescriptor) *enumNames {
	if n, ok := enumCache.Load(ed.FullName()); ok {
		return n.(*enumNames)
	}
	prefix := upperSnake(string(ed.Name())) + "_"
	values := ed.Values()
	n := &enumNames{
		byNumber: make(map[protoreflect.EnumNumber]string, values.Len()),
		byName:   make(map[string]protoreflect.EnumNumber, values.Len()),
	}
	for i := 0; i < values.Len(); i++ {
		v := values.Get(i)
		name := ""
		if v.Number() != 0 {
			name = strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix))
		}
		if _, dup := n.byNumber[v.Number()]; dup {
			continue // an alias: the first name of a number is its JSON name
		}
		n.byNumber[v.Number()] = name
		n.byName[name] = v.Number()
	}
	enumCache.Store(ed.FullName(), n)
	return n
}

// EnumJSONName is the JSON name of number in ed, and false for a number ed
// does not define.
func EnumJSONName(ed protoreflect.EnumDescriptor, number protoreflect.EnumNumber) (string, bool) {
	s, ok := namesOf(ed).byNumber[number]
	return s, ok
}

// EnumNumber is the value of ed whose JSON name is s, or unknownEnumNumber.
func EnumNumber(ed protoreflect.EnumDescriptor, s string) protoreflect.EnumNumber {
	if n, ok := namesOf(ed).byName[s]; ok {
		return n
	}
	return unknownEnumNumber
}

// upperSnake spells a CamelCase name as buf's ENUM_VALUE_PREFIX rule
// expects the prefix: JobStatus → JOB_STATUS, HTTPCode → HTTP_CODE.
func upperSnake(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) {
			prev := r[i-1]
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}
